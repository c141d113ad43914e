"""Stage 3: the self-judge (DESIGN §4). Every mode turns K answers into a K×K matrix P.

Pairwise modes show each judged pair (i, j) in both orders. With p_fwd = p(first wins | i
first) and p_swp = p(first wins | j first), P[i][j] = ½·[p_fwd + (1 − p_swp)]: swapping i and j
swaps the two calls, so P[j][i] = 1 − P[i][j] and position bias cancels by construction.
`pairwise-logprob` reads p from the two labels' next-token log-probabilities (one token per
order); `pairwise-text` parses a greedy reply, so p is 1 or 0 and a pair counts only when both
orders agree (½ otherwise). `rubric` scores answers one at a time (judge_rubric.py). Cells the
judge did not measure (a pairs budget, a parse failure) come from a Bradley–Terry fit and are
marked in `estimated`. Scores are row means of P (diagonal ½).
"""

from __future__ import annotations

import json

from sao.config import JudgeConfig
from sao.engines.base import Engine, Message
from sao.errors import SaoError
from sao.stages import conversation, judge_reward, judge_rubric, template_kwargs
from sao.stages.bradley_terry import Pair, schedule
from sao.stages.judge_diagnostics import Diagnostics
from sao.stages.judge_text import text_calls
from sao.stages.verdicts import (
    WEAK_LABEL_MASS,
    Call,
    Verdicts,
    assemble,
    count_flag,
    first_probability,
    label_mass,
    row_means,
)
from sao.templates import Template
from sao.text.reasoning import DEFAULT_MARKERS

__all__ = ["Verdicts", "judge", "ordered_calls", "row_means"]


def ordered_calls(pairs: list[Pair]) -> list[tuple[int, int, str]]:
    """Both orders of every judged pair: (shown first, shown second, order)."""
    calls = []
    for i, j in pairs:
        calls.append((i, j, "forward"))
        calls.append((j, i, "swapped"))
    return calls


def request(
    prompt: str,
    first: str,
    second: str,
    template: Template,
    labels: tuple[str, str],
    system: str | None = None,
) -> list[Message]:
    """The judge conversation for one ordered pair (after judge.system, when set)."""
    content = template.render(
        prompt=prompt, first=first, second=second, first_label=labels[0], second_label=labels[1]
    )
    return conversation(system, {"role": "user", "content": content})


def logprob_calls(
    engine: Engine,
    conversations: list[list[Message]],
    labels: tuple[str, str],
    min_mass: float,
    kwargs: dict | None = None,
) -> list[Call]:
    """Single-order verdicts from the two labels' next-token log-probabilities.

    A call whose labels are absent or carry less than `min_mass` gives no verdict
    ("unparsed"): its pair is then estimated, never read from noise. `kwargs` go to the chat
    template.
    """
    calls = []
    read = engine.label_logprobs(conversations, list(labels), kwargs) if conversations else []
    for lp in read:
        p = first_probability(lp, labels[0], labels[1], min_mass)
        raw = json.dumps(lp)
        if p is None:
            calls.append(Call("unparsed", 1, raw, no_label_mass=True))
            continue
        verdict = "first" if p > 0.5 else "second" if p < 0.5 else "tie"
        weak = label_mass(lp) < WEAK_LABEL_MASS
        calls.append(Call(verdict, 1, raw, p_first=p, low_label_mass=weak))
    return calls


def pairwise_record(
    k: int, calls: dict[Pair, Call], order: list[tuple[int, int, str]], cfg: JudgeConfig
) -> Verdicts:
    """One record's P, diagnostics and flags from its single-order calls (both orders)."""
    diag = Diagnostics(mode=cfg.mode, calls=len(calls))
    diag.generated_tokens = sum(c.tokens for c in calls.values())
    diag.parse_failures = sum(c.verdict == "unparsed" for c in calls.values())
    diag.label_mass_failures = sum(c.no_label_mass for c in calls.values())
    decided = [(shown, c) for shown, c in calls.items() if c.verdict in ("first", "second")]
    diag.decided_calls = len(decided)
    diag.first_wins = sum(c.verdict == "first" for _, c in decided)
    measured: dict[Pair, float] = {}
    consistent: dict[Pair, int] = {}
    disagreements = 0
    for i, j, direction in order:
        if direction != "forward":
            continue
        fwd, swp = calls[(i, j)], calls[(j, i)]
        if fwd.p_first is None or swp.p_first is None:
            continue  # an unparsed order: the cell is estimated, never guessed
        measured[(i, j)] = 0.5 * (fwd.p_first + (1.0 - swp.p_first))
        if fwd.verdict in ("first", "second") and swp.verdict in ("first", "second"):
            diag.decisive_pairs += 1
            winner_fwd = i if fwd.verdict == "first" else j
            winner_swp = j if swp.verdict == "first" else i
            if winner_fwd == winner_swp:
                consistent[(i, j)] = winner_fwd
            else:
                diag.position_flips += 1
                disagreements += 1
    judgments = [
        {
            "i": first,
            "j": second,
            "order": direction,
            "p_first": calls[(first, second)].p_first,
            "score": None,
            "verdict": calls[(first, second)].verdict,
            "tokens": calls[(first, second)].tokens,
            "raw": calls[(first, second)].raw,
        }
        for first, second, direction in order
    ]
    flags: list[str] = []
    count_flag(flags, "judge_parse_failure", diag.parse_failures)
    count_flag(flags, "judge_low_label_mass", sum(c.low_label_mass for c in calls.values()))
    count_flag(flags, "judge_no_label_mass", diag.label_mass_failures)
    if cfg.mode == "pairwise-text":
        count_flag(flags, "judge_order_disagreement", disagreements)
    return assemble(k, measured, judgments, diag, cfg.tie_band, consistent, flags)


def judge(
    engine: Engine,
    items: list[tuple[str, list[str]]],
    template: Template,
    cfg: JudgeConfig,
    markers: tuple[str, str] = DEFAULT_MARKERS,
) -> list[Verdicts]:
    """Judge every record's answers in one batched engine call; items are (prompt, answers).
    A written verdict is read without its reasoning (between `markers`)."""
    if cfg.mode == "rubric":
        return judge_rubric.judge(engine, items, template, cfg, markers)
    if cfg.mode == "reward-model":
        return judge_reward.judge(engine, items, template, cfg)
    if cfg.mode == "pairwise-logprob" and not getattr(engine, "supports_logprobs", True):
        raise SaoError(
            f"engine {engine.name} returns no log-probabilities: "
            "set judge.mode to pairwise-text or rubric"
        )
    labels = (cfg.labels[0], cfg.labels[1])
    conversations, index = [], []
    orders = [ordered_calls(schedule(len(texts), cfg.opponents)) for _, texts in items]
    for rec, (prompt, texts) in enumerate(items):
        for first, second, _ in orders[rec]:
            conversations.append(
                request(prompt, texts[first], texts[second], template, labels, cfg.system)
            )
            index.append((rec, first, second))
    if cfg.mode == "pairwise-text":
        outcomes = text_calls(
            engine, conversations, labels, cfg.max_tokens, template_kwargs(cfg), markers
        )
    else:
        outcomes = logprob_calls(
            engine, conversations, labels, cfg.min_label_mass, template_kwargs(cfg)
        )
    per_record: list[dict[Pair, Call]] = [{} for _ in items]
    for (rec, first, second), call in zip(index, outcomes, strict=True):
        per_record[rec][(first, second)] = call
    return [
        pairwise_record(len(texts), per_record[rec], orders[rec], cfg)
        for rec, (_, texts) in enumerate(items)
    ]
