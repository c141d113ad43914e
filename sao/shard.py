"""One shard through every stage: its personas' prompts, K answers each, the judge, the pairs,
and the records and stage statistics the store commits."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from sao import failpoints
from sao.config import RunConfig
from sao.engines import Completion, Engine
from sao.personas import Persona
from sao.records import record_id
from sao.seeds import stage_seed
from sao.stages import judge, pairs, prompts, responses
from sao.stages.filters import PromptFilter
from sao.stages.verdicts import Verdicts
from sao.templates import Template
from sao.totals import flag_kind

T = TypeVar("T")


def run_shard(
    engine: Engine,
    cfg: RunConfig,
    index: int,
    personas: list[Persona],
    templates: dict[str, Template],
    on_stage: Any = None,
    prompt_filter: PromptFilter | None = None,
    judge_engine: Engine | None = None,
) -> tuple[list[dict], dict[str, Any]]:
    """Carry one shard of personas through every stage; returns records and stage stats.

    `prompt_filter` holds the prompts kept by earlier shards; this shard's are added to it.
    `judge_engine` serves `judge.model`; None: the generator's engine judges (self-judging).
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
            cfg.reasoning.markers,
        ),
        lambda results: sum(r.tokens for r in results),
    )
    kept = [(p, r) for p, r in zip(personas, synthesized, strict=True) if r.prompt is not None]
    asked = responses.conversations([r.prompt for _, r in kept], cfg.responses)
    sampled = stage(
        "responses",
        lambda: responses.sample(
            engine,
            asked,
            cfg.responses,
            stage_seed(cfg.seed, index, "responses"),
            cfg.reasoning.markers,
        ),
        lambda results: sum(c.num_tokens for comps in results for c in comps),
    )
    items = [
        (r.prompt, [c.text for c in comps]) for (_, r), comps in zip(kept, sampled, strict=True)
    ]
    verdicts = stage(
        "judge",
        lambda: judge.judge(
            judge_engine or engine, items, templates["judge"], cfg.judge, cfg.reasoning.markers
        ),
        lambda results: sum(v.diagnostics.generated_tokens for v in results),
    )
    judge_calls = sum(v.diagnostics.calls for v in verdicts)
    judge_sums: Counter[str] = Counter()

    records = []
    flag_counts: Counter[str] = Counter()
    for (persona, result), conversation, comps, verdict in zip(
        kept, asked, sampled, verdicts, strict=True
    ):
        record = assemble_record(cfg, index, persona, result, conversation, comps, verdict)
        judge_sums.update(verdict.diagnostics.sums())
        flag_counts.update(flag_kind(f) for f in record["flags"])
        records.append(record)
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


def assemble_record(
    cfg: RunConfig,
    index: int,
    persona: Persona,
    result: prompts.PromptResult,
    conversation: list[dict[str, str]],
    comps: list[Completion],
    verdict: Verdicts,
) -> dict[str, Any]:
    """One record (DESIGN §5): its pairs picked from the verdict, every flag gathered;
    `conversation` is what the answers were sampled from (responses.system, then the prompt)."""
    lengths = [c.num_tokens for c in comps]
    chosen, pair_flags = pairs.select(verdict, lengths, cfg.pairs)
    verdict.diagnostics.observe_pairs([p["margin"] for p in chosen], verdict.scores, lengths)
    truncated = sum(c.finish_reason == "length" for c in comps)
    flags = [*result.flags, *verdict.flags, *pair_flags]
    if truncated:
        flags.append(f"response_truncated:{truncated}")
    return {
        "record_id": record_id(cfg.seed, persona.id),
        "shard": index,
        "persona_id": persona.id,
        "persona": persona.text,
        "prompt": conversation,
        "responses": [
            {
                "text": c.text,
                "finish_reason": c.finish_reason,
                "num_tokens": c.num_tokens,
                "seed": c.seed,
                "seed_row": c.seed_row,
                "reasoning": c.reasoning if cfg.reasoning.keep else None,
            }
            for c in comps
        ],
        "pref_matrix": verdict.matrix,
        "pref_estimated": verdict.estimated,
        "scores": verdict.scores,
        "judgments": verdict.judgments,
        "pairs": chosen,
        "judge_stats": verdict.diagnostics.record(),
        "judge_model": cfg.judge.model or cfg.model,
        "flags": flags,
    }
