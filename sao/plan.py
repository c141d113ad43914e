"""What a run will do before it does it: its shards and its cost per stage (`--dry-run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sao.config import RunConfig
from sao.stages.bradley_terry import schedule

T = TypeVar("T")


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
    if jc.mode == "reward-model":
        return k, 0  # one forward pass per answer, nothing generated
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


def layout(personas: list[T], segments: list[int], size: int) -> list[list[T]]:
    """Shards of `size` personas, cut afresh in each segment (a run, then each `--extend`)."""
    shards, start = [], 0
    for count in segments:
        segment = personas[start : start + count]
        shards += [segment[i : i + size] for i in range(0, len(segment), size)]
        start += count
    return shards
