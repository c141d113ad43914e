"""The per-round figures, as pure functions of answers, judge verdicts and log-probs.

Text measures come from `sao.text` (the report's own), the tie from the judge's one
definition (`preference`), so a round's figures mean what the run's report means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sao.rounds.config import StopRules
from sao.stages.judge_diagnostics import agreement_counts, preference
from sao.text.bleu import self_bleu
from sao.text.ngrams import distinct_n, repeated_ngram_rate


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def duel_outcomes(
    p_first: Sequence[float], lengths: Sequence[tuple[int, int]], band: float, length_match: float
) -> dict[str, Any]:
    """Wins, ties and losses of answer A over answer B (P(A ≻ B) per duel, both orders already
    folded in by the judge), overall and over the duels whose lengths are within
    `length_match` of each other."""

    def tally(ps: list[float]) -> dict[str, Any]:
        outcome = [preference(p, band) for p in ps]
        n = len(ps)
        wins, losses = outcome.count(1), outcome.count(-1)
        return {
            "duels": n,
            "win_rate": wins / n if n else None,
            "tie_rate": (n - wins - losses) / n if n else None,
            "loss_rate": losses / n if n else None,
            "mean_p": mean(ps),
        }

    matched = [
        p
        for p, (a, b) in zip(p_first, lengths, strict=True)
        if min(a, b) > 0 and max(a, b) / min(a, b) <= length_match
    ]
    return {**tally(list(p_first)), "length_matched": tally(matched)}


def kl_estimate(policy_logprobs: Sequence[float], other_logprobs: Sequence[float]) -> dict:
    """KL(π ‖ other) estimated from π's own samples: the mean of log π(y) − log other(y),
    with its standard error."""
    diffs = np.asarray(policy_logprobs) - np.asarray(other_logprobs)
    if not len(diffs):
        return {"kl": None, "stderr": None, "samples": 0}
    stderr = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else None
    return {"kl": float(diffs.mean()), "stderr": stderr, "samples": len(diffs)}


def degeneration(texts: Sequence[str], tokens: Sequence[int], truncated: Sequence[bool]) -> dict:
    """Length, truncation and repetition of a policy's answers."""
    return {
        "answers": len(texts),
        "mean_tokens": mean(tokens),
        "truncation_rate": mean([float(t) for t in truncated]),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "self_bleu": self_bleu(texts),
        "repeated_3gram_rate": mean([repeated_ngram_rate(t) for t in texts]),
    }


def probe_rate(better: Sequence[float], worse: Sequence[float]) -> dict[str, Any]:
    """How often the better answer has the higher length-normalised log-likelihood."""
    wins = [b > w for b, w in zip(better, worse, strict=True)]
    return {
        "probes": len(wins),
        "better_more_likely": mean([float(x) for x in wins]),
        "mean_gap": mean([b - w for b, w in zip(better, worse, strict=True)]),
    }


def agreement(run_p: Sequence[float], other_p: Sequence[float], band: float) -> dict[str, Any]:
    """Of pairs both judges decide (neither a tie), the share where they prefer the same one."""
    decided, same = agreement_counts(zip(run_p, other_p, strict=True), band)
    rate = same / decided if decided else None
    return {"pairs": len(run_p), "decided": decided, "agreement": rate}


def fired_rule(rules: StopRules, first: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The stop rule round `now`'s figures break, against round 0's (`first`), or None."""
    length_0, length = first["degeneration"]["mean_tokens"], now["degeneration"]["mean_tokens"]
    if rules.length_growth is not None and length_0 and length / length_0 > rules.length_growth:
        return f"length_growth: mean answer {length:.1f} tokens, {length / length_0:.2f}× π_0's"
    d2_0, d2 = first["degeneration"]["distinct_2"], now["degeneration"]["distinct_2"]
    if rules.distinct2_drop is not None and d2_0 and (d2_0 - d2) / d2_0 >= rules.distinct2_drop:
        return f"distinct2_drop: distinct-2 {d2:.3f} against π_0's {d2_0:.3f}"
    kl = (now.get("kl_initial") or {}).get("kl")
    if rules.kl_max is not None and kl is not None and kl > rules.kl_max:
        return f"kl_max: KL(π_r ‖ π_0) {kl:.3f} nats"
    duel = now.get("vs_previous") or {}
    if rules.no_win and duel.get("win_rate") is not None and duel["win_rate"] <= duel["loss_rate"]:
        return (
            f"no_win: won {duel['win_rate']:.2f}, lost {duel['loss_rate']:.2f} "
            "against the previous round"
        )
    return None


def best_round(by_round: dict[int, dict[str, Any]]) -> int:
    """The round whose policy the frozen judge rates best against π_0 (ties count half); π_0
    itself scores ½, so a loop that never beats it names round 0."""

    def score(metrics: dict[str, Any]) -> float:
        duel = metrics.get("vs_initial")
        if not duel or duel["win_rate"] is None:
            return 0.5
        return duel["win_rate"] + duel["tie_rate"] / 2

    return max(sorted(by_round), key=lambda r: (score(by_round[r]), -r))
