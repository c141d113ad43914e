"""How far to trust the judge: per-record diagnostics and their run-level rates.

A record's diagnostics are counts (so shards and runs sum them exactly) plus the rates derived
from those counts. Position bias is measured on the single-order verdicts, before the swap
cancels it: a pair "flips" when each order picks the answer shown in the same position.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any


@dataclass
class Diagnostics:
    """Counts for one record's judgment; `record()` gives the row stored in `judge_stats`."""

    mode: str
    calls: int = 0
    generated_tokens: int = 0
    pairs_judged: int = 0
    estimated_cells: int = 0
    decisive_pairs: int = 0
    position_flips: int = 0
    first_wins: int = 0  # single-order verdicts for the answer shown first
    decided_calls: int = 0  # single-order verdicts that picked an answer
    ties: int = 0
    triples: int = 0
    intransitive_triples: int = 0
    parse_failures: int = 0  # calls that gave no verdict (unparsable, or no label mass)
    label_mass_failures: int = 0  # ... of them: logprob calls whose labels were absent or weak
    margins: list[float] = field(default_factory=list)
    centred: list[tuple[float, float]] = field(default_factory=list)  # (tokens, score) − mean

    def observe_matrix(self, matrix: list[list[float]], estimated: list[list[bool]], band: float):
        """Count ties among measured cells and preference cycles among all triples of P."""
        k = len(matrix)
        for i, j in combinations(range(k), 2):
            if estimated[i][j]:
                self.estimated_cells += 1
            else:
                self.pairs_judged += 1
                self.ties += preference(matrix[i][j], band) == 0
        for i, j, m in combinations(range(k), 3):
            self.triples += 1
            self.intransitive_triples += is_cycle(matrix, i, j, m, band)

    def observe_pairs(self, margins: list[float], scores: list[float], lengths: list[int]):
        """Record the selected pairs' margins and the answers' (length, score) deviations."""
        self.margins = list(margins)
        mean_len = sum(lengths) / len(lengths)
        mean_score = sum(scores) / len(scores)
        self.centred = [
            (n - mean_len, s - mean_score) for n, s in zip(lengths, scores, strict=True)
        ]

    def record(self) -> dict[str, Any]:
        """The `judge_stats` struct of the record (DESIGN §5)."""
        sums = self.sums()
        return {"mode": self.mode, **{k: sums[k] for k in COUNTS}, **rates(sums)}

    def sums(self) -> Counter:
        """Additive counts: shards and runs add these and derive rates from the totals."""
        sxx = sum(x * x for x, _ in self.centred)
        syy = sum(y * y for _, y in self.centred)
        sxy = sum(x * y for x, y in self.centred)
        counts = {k: getattr(self, k) for k in (*COUNTS, "first_wins", "decided_calls")}
        counts.update(
            triples=self.triples,
            records=1,
            margin_sum=sum(self.margins),
            margin_n=len(self.margins),
            len_sxx=sxx,
            len_syy=syy,
            len_sxy=sxy,
        )
        return Counter(counts)


COUNTS = (
    "calls",
    "generated_tokens",
    "pairs_judged",
    "estimated_cells",
    "decisive_pairs",
    "position_flips",
    "ties",
    "intransitive_triples",
    "parse_failures",
    "label_mass_failures",
)


def preference(p: float, band: float) -> int:
    """+1 when P[i][j] = p prefers i, −1 when it prefers j, 0 for a tie (|p − ½| ≤ band).

    The one definition of a tie: the tie counts and the cycle counts both use it.
    """
    if abs(p - 0.5) <= band:
        return 0
    return 1 if p > 0.5 else -1


def agreement_counts(cells: Iterable[tuple[float, float]], band: float) -> tuple[int, int]:
    """Of (p, q) cells two judges measured, how many both decide (neither a tie), and how many
    of those they decide the same way."""
    decided = same = 0
    for p, q in cells:
        a, b = preference(p, band), preference(q, band)
        if a and b:
            decided += 1
            same += a == b
    return decided, same


def is_cycle(matrix: list[list[float]], i: int, j: int, m: int, band: float) -> bool:
    """True when i, j, m beat each other in a circle (three preferences, none a tie)."""
    signs = {preference(matrix[a][b], band) for a, b in ((i, j), (j, m), (m, i))}
    return signs in ({1}, {-1})


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def rates(sums: Counter | dict[str, float]) -> dict[str, float | None]:
    """Rates from summed counts; None where nothing was there to measure."""
    length_den = math.sqrt(sums.get("len_sxx", 0) * sums.get("len_syy", 0))
    return {
        "position_bias_rate": _ratio(sums.get("position_flips", 0), sums.get("decisive_pairs", 0)),
        "first_wins_rate": _ratio(sums.get("first_wins", 0), sums.get("decided_calls", 0)),
        "tie_rate": _ratio(sums.get("ties", 0), sums.get("pairs_judged", 0)),
        "pair_margin_mean": _ratio(sums.get("margin_sum", 0), sums.get("margin_n", 0)),
        "length_corr": _ratio(sums.get("len_sxy", 0), length_den) if length_den > 1e-12 else None,
    }


def run_summary(sums: Counter | dict[str, float]) -> dict[str, Any]:
    """The manifest's judge block: summed counts plus run-level rates."""
    out: dict[str, Any] = {k: sums.get(k, 0) for k in ("records", *COUNTS, "triples")}
    out["intransitive_rate"] = _ratio(sums.get("intransitive_triples", 0), sums.get("triples", 0))
    out.update(rates(sums))
    return out
