"""Stage 4: choose preference pairs from the judge's scores."""

from __future__ import annotations

from sao.config import PairConfig


def select(scores: list[float], cfg: PairConfig) -> tuple[list[dict], list[str]]:
    """Best-vs-worst pair when its score gap reaches `min_margin`; else no pair and a flag."""
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    worst = min(range(len(scores)), key=lambda i: (scores[i], i))
    margin = scores[best] - scores[worst]
    if best == worst or margin <= 0:
        return [], ["no_pair:all_tied"]
    if margin < cfg.min_margin:
        return [], ["no_pair:below_min_margin"]
    pair = {"chosen": best, "rejected": worst, "margin": margin, "strategy": cfg.strategy}
    return [pair], []
