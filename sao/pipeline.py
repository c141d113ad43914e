"""`sao generate`, top to bottom: personas → prompts → K responses → judge → pairs → shards.

Prepare (personas, templates, model, checks), open the output folder, load the engine, then run
and commit each shard the folder does not hold yet; the work of a shard is in `shard.py`.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

import sao
from sao import failpoints
from sao.config import RunConfig
from sao.engine_setup import load_engine, served_model
from sao.engines import Engine, resolve_engine_name
from sao.engines.guard import EngineSlot
from sao.filter_feed import FilterFeed
from sao.models import resolve_model
from sao.personas import Persona, choose_personas
from sao.plan import layout, make_plan
from sao.preflight import check_token_budget, preflight
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
    chosen, about_personas = choose_personas(cfg)
    templates = {
        "prompts": Template(cfg.prompts.template),
        "judge": Template(cfg.judge.template_name()),
    }
    engine_name = resolve_engine_name(cfg.engine.name)
    if engine_name == "openai":  # the server holds the model; the engine asks it which one
        model = served_model(cfg.model)
        preflight(cfg, model, chosen, templates)
    else:
        preflight(cfg, resolve_model(cfg.model, prepare=False), chosen, templates)
        model = resolve_model(cfg.model, prepare=not dry_run)  # the embedded model: converted once
        if not dry_run:
            model = resumed_revision(model, cfg.output.dir, mode)
            check_token_budget(cfg, model, templates)
    plan = make_plan(cfg, len(chosen))
    if dry_run:
        return {"config": cfg.model_dump(mode="json"), "plan": plan.__dict__}

    header = {
        "sao_version": sao.__version__,
        "config": cfg.data_dict(),
        "config_hash": cfg.data_hash(),
        "engine": {"name": engine_name},
        "model": model_identity(model),
        "templates": {t.name: t.sha256 for t in templates.values()},
        "packages": package_versions(engine_name),
        "environment": environment_versions(),
        "personas": about_personas,
        "seeding": SEED_SCHEME,
    }
    slot = EngineSlot(lambda: load_engine(cfg, model, console), engine)
    prepare_s = time.perf_counter() - started
    try:
        if mode == "overwrite":
            slot.get()  # a model that fails to load leaves the run to be replaced in place
        if engine_name == "openai":  # the server says which model it serves before resume checks
            header["model"].update(slot.get().identity())
            header["engine"]["base_url"] = slot.get().base_url
        store = Store.open(cfg.output.dir, header, mode)
        try:
            run_shards(cfg, store, slot, chosen, templates, console)
            startup = {"prepare": round(prepare_s, 3), "engine_load": round(slot.load_s, 3)}
            store.finish({**totals(store.manifest["shards"]), "startup_s": startup})
        finally:
            store.close()
    finally:
        slot.close()
    return store.manifest


def run_shards(
    cfg: RunConfig,
    store: Store,
    slot: EngineSlot,
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
                )

            def undo() -> None:
                progress.undo()
                feed.reset()
                slot.drop()

            records, stats = with_retries(attempt, undo, cfg, index, store, console)
            store.commit(index, records, stats)
            progress.keep()
