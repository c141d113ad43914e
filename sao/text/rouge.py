"""ROUGE-L F1 of two token lists (rouge-score's, to the bit), the Self-Instruct repetition
threshold, and the bounds that drop pairs which cannot pass it (used by `repetition` and
`repetition_index`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REPETITION_ROUGE_L = 0.7


def rouge_l_f1(target: Sequence[str], prediction: Sequence[str]) -> float:
    """rouge-score's ROUGE-L F1 of two token lists, with its float steps (so equal to the bit)."""
    lcs = _lcs(target, prediction) if target and prediction else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(target)
    return 2 * precision * recall / (precision + recall)


def _lcs(x: Sequence[str], y: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004)."""
    if len(y) > len(x):
        x, y = y, x  # loop over the shorter one
    masks: dict[str, int] = {}
    for position, token in enumerate(x):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(x)) - 1
    row = full
    for token in y:
        matched = row & masks.get(token, 0)
        row = (row + matched) | (row - matched)
    return len(x) - (row & full).bit_count()


# Pruning bounds. F1 = 2·LCS/(a+b) for lengths a, b, and LCS ≤ the multiset overlap o ≤ min(a, b),
# so a pair can pass only when o > θ(a+b)/2. Then also b > θa/(2−θ) and o > θa/(2−θ) =: ρa, and
# o > θ·min(a, b). The bounds use θ − SLACK (and floors a further −SLACK) so that float rounding,
# here or in rouge's F1, can only keep a pair that exact arithmetic would drop, never the reverse.
SLACK = 1e-9


def ratio(low: float) -> float:
    """ρ = θ/(2−θ): a passing pair's overlap exceeds ρ times the length of either text."""
    return low / (2 - low)


def check_threshold(threshold: float) -> None:
    """Raise ValueError for a threshold below 0 (or NaN)."""
    if not threshold >= 0:
        raise ValueError(f"a ROUGE-L threshold is at least 0, not {threshold}")


def may_pass(a: np.ndarray, b: np.ndarray, differing_bits: np.ndarray, low: float) -> np.ndarray:
    """Length bound and signature bound on the overlap, o ≤ (a + b − popcount(sig_a ^ sig_b))/2.

    A bit set in one signature only needs an element of the symmetric difference (a + b − 2o
    elements) hashed to it, so popcount(xor) ≤ a + b − 2o.
    """
    bound = low * (a + b)
    return (2 * np.minimum(a, b) > bound) & (a + b - differing_bits > bound)


def bounds_pass(a: int, b: int, differing: int, low: float) -> bool:
    """The scalar form of `may_pass` for one pair."""
    bound = low * (a + b)
    return 2 * min(a, b) > bound and a + b - differing > bound
