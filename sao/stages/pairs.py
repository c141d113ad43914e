"""Stage 4: choose preference pairs from the judge's scores.

Strategies: `best-worst` (one pair: the top and bottom scores), `all-above-margin` (every
ordered pair whose score gap reaches `min_margin`, widest first) and `consistent-only` (those
of them whose verdict survived the swap: both orders, or the rubric's two scores, agree).
`max_length_ratio` then drops pairs whose chosen answer is that many times longer (tokens).
Every record left without a pair says why in its flags; one whose measured cells do not
connect its K answers (judge calls with no verdict) gets none (`no_pair:unmeasured`).
"""

from __future__ import annotations

from itertools import permutations

from sao.config import PairConfig
from sao.stages.bradley_terry import identified
from sao.stages.verdicts import Verdicts


def _pair(chosen: int, rejected: int, margin: float, strategy: str) -> dict:
    return {"chosen": chosen, "rejected": rejected, "margin": margin, "strategy": strategy}


def candidates(verdicts: Verdicts, cfg: PairConfig) -> tuple[list[dict], str | None]:
    """Pairs the strategy picks before length control, or none and the reason.

    Scores are compared as stored (float32): a chosen answer scores strictly higher.
    """
    scores = verdicts.scores
    k = len(scores)
    if not identified(verdicts.estimated):
        return [], "unmeasured"
    best = max(range(k), key=lambda i: (scores[i], -i))
    worst = min(range(k), key=lambda i: (scores[i], i))
    widest = scores[best] - scores[worst]
    if best == worst or widest <= 0:
        return [], "all_tied"
    if widest < cfg.min_margin:
        return [], "below_min_margin"
    if cfg.strategy == "best-worst":
        return [_pair(best, worst, widest, cfg.strategy)], None
    above = [
        (scores[i] - scores[j], i, j)
        for i, j in permutations(range(k), 2)
        if scores[i] - scores[j] >= cfg.min_margin and scores[i] > scores[j]
    ]
    if cfg.strategy == "consistent-only":
        above = [
            (m, i, j) for m, i, j in above if verdicts.consistent.get((min(i, j), max(i, j))) == i
        ]
        if not above:
            return [], "inconsistent"
    above.sort(key=lambda t: (-round(t[0], 9), t[1], t[2]))  # equal gaps: lower index first
    return [_pair(i, j, m, cfg.strategy) for m, i, j in above], None


def select(verdicts: Verdicts, lengths: list[int], cfg: PairConfig) -> tuple[list[dict], list[str]]:
    """The record's pairs and the flags explaining any that were not kept."""
    chosen, reason = candidates(verdicts, cfg)
    if reason:
        return [], [f"no_pair:{reason}"]
    flags = []
    if cfg.max_length_ratio is not None:
        kept = [
            p
            for p in chosen
            if lengths[p["chosen"]] <= cfg.max_length_ratio * max(lengths[p["rejected"]], 1)
        ]
        if len(kept) < len(chosen):
            flags.append(f"pair_length_dropped:{len(chosen) - len(kept)}")
        if not kept:
            flags.append("no_pair:length_control")
        chosen = kept
    return chosen, flags
