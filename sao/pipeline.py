"""`sao generate`, top to bottom: personas → prompts → K responses → judge → pairs → shards.

Prepare (personas, templates, model, checks), open the output folder, load the engine, then run
and commit each shard the folder does not hold yet; the work of a shard is in `shard.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console

import sao
from sao import failpoints
from sao.config import RunConfig
from sao.engine_setup import load_engine, unloaded_model
from sao.engines import Engine, resolve_engine_name
from sao.engines.guard import EngineSlot
from sao.engines.hardware import cuda_available, resolve_dtype
from sao.filter_feed import FilterFeed
from sao.models import ResolvedModel, resolve_model
from sao.personas import Persona, choose_personas
from sao.plan import layout, make_plan
from sao.preflight import check_chat_templates, check_model, check_token_budget, preflight
from sao.progress import StageProgress
from sao.provenance import (
    environment_versions,
    model_identity,
    package_versions,
    resumed_revision,
)
from sao.retries import with_retries
from sao.seeds import SEED_SCHEME
from sao.shard import run_shard
from sao.store import Store
from sao.templates import Template
from sao.totals import totals


@dataclass
class Prepared:
    """What a run needs before any engine loads: personas, templates, and both models."""

    chosen: list[Persona]
    about_personas: dict[str, Any]
    templates: dict[str, Template]
    engine_name: str
    judge_name: str
    model: ResolvedModel
    judge_model: ResolvedModel | None  # None: the generator judges itself


def prepare(cfg: RunConfig, *, load: bool, mode: str, write: bool = True) -> Prepared:
    """Personas, templates and models, every input checked in one line before any load.

    `load`: make the models ready (the embedded one converted once, a hub id pinned) and check
    the judge's token budget; `write`: the output folder must be writable.
    """
    chosen, about_personas = choose_personas(cfg)
    templates = {
        "prompts": Template(cfg.prompts.template),
        "judge": Template(cfg.judge.template_name()),
    }
    engine_name = resolve_engine_name(cfg.engine.name)
    reward = cfg.judge.mode == "reward-model"
    judge_name = "hf-reward" if reward else resolve_engine_name(cfg.judge_engine().name)
    model = unloaded_model(cfg.model, engine_name)
    judge_model = unloaded_model(cfg.judge.model, judge_name) if cfg.judge.model else None
    preflight(cfg, model, chosen, templates, output=write)
    if judge_model is not None:
        check_model(judge_model)
    if load:
        model = prepared(model, cfg.output.dir, mode, "model")
        if judge_model is not None:
            judge_model = prepared(judge_model, cfg.output.dir, mode, "judge_model")
        check_chat_templates(cfg, model, judge_model)
        judge_cfg = cfg.judge_engine() if judge_model is not None else cfg.engine
        section = "judge.engine" if judge_model is not None else "engine"
        check_token_budget(cfg, judge_cfg, judge_model or model, templates, section)
    return Prepared(chosen, about_personas, templates, engine_name, judge_name, model, judge_model)


def engine_slots(
    cfg: RunConfig, ready: Prepared, console: Console, engine: Engine | None = None
) -> tuple[EngineSlot, EngineSlot]:
    """The generator's engine slot and the judge's (the same slot when the generator judges)."""
    model, judge_model = ready.model, ready.judge_model
    slot = EngineSlot(
        lambda: load_engine(cfg, cfg.engine, model, console, judges=judge_model is None), engine
    )
    if judge_model is None:
        return slot, slot
    judge_slot = EngineSlot(
        lambda: load_engine(cfg, cfg.judge_engine(), judge_model, console, judges=True)
    )
    return slot, judge_slot


def generate(
    cfg: RunConfig,
    console: Console,
    *,
    dry_run: bool = False,
    engine: Engine | None = None,
    mode: str = "resume",
) -> dict[str, Any]:
    """Run (or, with dry_run, plan) a whole generation; returns the manifest or the plan.

    `engine` lets a caller (a benchmark, a notebook) reuse a loaded engine; it is not closed.
    `mode` is `Store.open`'s: "resume" (the default), "overwrite" or "extend".
    """
    started = time.perf_counter()
    ready = prepare(cfg, load=not dry_run, mode=mode)
    chosen, templates = ready.chosen, ready.templates
    engine_name, model, judge_model = ready.engine_name, ready.model, ready.judge_model
    plan = make_plan(cfg, len(chosen))
    if dry_run:
        return {"config": cfg.model_dump(mode="json"), "plan": plan.__dict__}

    header = {
        "sao_version": sao.__version__,
        "config": cfg.data_dict(),
        "config_hash": cfg.data_hash(),
        "engine": {"name": engine_name, "dtype": run_dtype(engine_name, cfg.engine.dtype)},
        "model": model_identity(model),
        "judge_model": model_identity(judge_model) if judge_model is not None else None,
        "templates": {t.name: t.sha256 for t in templates.values()},
        "packages": package_versions(engine_name),
        "environment": environment_versions(),
        "personas": ready.about_personas,
        "seeding": SEED_SCHEME,
    }
    if judge_model is not None:
        header["engine"]["judge"] = ready.judge_name
        header["engine"]["judge_dtype"] = run_dtype(ready.judge_name, cfg.judge_engine().dtype)
        if ready.judge_name != engine_name:
            header["packages"] = {**package_versions(ready.judge_name), **header["packages"]}
    slot, judge_slot = engine_slots(cfg, ready, console, engine)
    prepare_s = time.perf_counter() - started
    try:
        if mode == "overwrite":
            slot.get()  # a model that fails to load leaves the run to be replaced in place
        for one, key, url in (
            (slot, "model", "base_url"),
            (judge_slot, "judge_model", "judge_url"),
        ):
            if header[key] is not None and header[key]["source"] == "server":
                # the server says which model it serves before resume checks
                header[key].update(one.get().identity())
                header["engine"][url] = one.get().base_url
        store = Store.open(cfg.output.dir, header, mode)
        try:
            run_shards(cfg, store, slot, judge_slot, chosen, templates, console)
            load_s = slot.load_s + (judge_slot.load_s if judge_slot is not slot else 0.0)
            startup = {"prepare": round(prepare_s, 3), "engine_load": round(load_s, 3)}
            store.finish({**totals(store.manifest["shards"]), "startup_s": startup})
        finally:
            store.close()
    finally:
        slot.close()
        judge_slot.close()
    return store.manifest


def run_dtype(engine_name: str, dtype: str) -> str:
    """The dtype the engine computes in, where sao resolves `auto` itself (hf; vLLM on CPU);
    elsewhere (vLLM on a GPU, servers, Ray replicas) the configured value."""
    if engine_name == "hf" or (engine_name == "vllm" and not cuda_available()):
        return resolve_dtype(dtype)
    return dtype


def prepared(model: ResolvedModel, out_dir: str, mode: str, key: str) -> ResolvedModel:
    """The model ready to load: the embedded one converted once, an unpinned hub id at the
    commit its run started with (`key`: where the manifest records it)."""
    if model.source == "server":
        return model
    return resumed_revision(resolve_model(model.name, prepare=True), out_dir, mode, key)


def run_shards(
    cfg: RunConfig,
    store: Store,
    slot: EngineSlot,
    judge_slot: EngineSlot,
    chosen: list[Persona],
    templates: dict[str, Template],
    console: Console,
) -> None:
    """Produce and commit every shard the store does not hold yet, in order."""
    failpoints.reach("opened")
    shards = layout(chosen, store.manifest["segments"], cfg.output.shard_size)
    committed = store.committed()
    todo = [i for i in range(len(shards)) if i not in committed]
    if not todo:
        return
    done_personas = sum(len(shards[i]) for i in committed if i < len(shards))
    if done_personas:
        done = len(shards) - len(todo)
        console.print(f"resuming: {done} of {len(shards)} shards committed", soft_wrap=True)
    engine = slot.get()
    if engine.name == "ray":
        store.manifest["engine"]["replicas"] = engine.replicas
    feed = FilterFeed(cfg, store)
    with StageProgress(console, len(chosen), done_personas) as progress:
        for index in todo:

            def attempt(index: int = index) -> tuple[list[dict], dict[str, Any]]:
                return run_shard(
                    slot.get(),
                    cfg,
                    index,
                    shards[index],
                    templates,
                    progress.update,
                    feed.before(index),
                    judge_slot.get(),
                )

            def undo() -> None:
                progress.undo()
                feed.reset()
                slot.drop()
                judge_slot.drop()

            records, stats = with_retries(attempt, undo, cfg, index, store, console)
            store.commit(index, records, stats)
            progress.keep()
