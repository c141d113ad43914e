"""What every judge mode returns: per-call outcomes in, one preference matrix per record out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sao.records import as_stored
from sao.stages import bradley_terry
from sao.stages.bradley_terry import Pair
from sao.stages.judge_diagnostics import Diagnostics

WEAK_LABEL_MASS = 0.5  # a verdict whose labels carry less than this is flagged as weak


@dataclass(frozen=True)
class Call:
    """One judge engine call: p(first wins) or a score, the verdict, and what it cost."""

    verdict: str  # "first" | "second" | "tie" | a rubric score | "unparsed"
    tokens: int  # tokens generated (1 for a label read from the next-token distribution)
    raw: str  # label log-probs as JSON, or the generated text
    p_first: float | None = None
    score: float | None = None
    low_label_mass: bool = False  # a weak verdict: counted, but its labels carry < ½ the mass
    no_label_mass: bool = False  # no verdict: a label absent, or too little mass on the labels


@dataclass
class Verdicts:
    """The judge's output for one record."""

    matrix: list[list[float]]
    estimated: list[list[bool]]
    scores: list[float]
    judgments: list[dict]
    flags: list[str] = field(default_factory=list)
    consistent: dict[Pair, int] = field(default_factory=dict)  # pair → winner in both orders
    diagnostics: Diagnostics = field(default_factory=lambda: Diagnostics(mode=""))


def label_mass(logprobs: dict[str, float]) -> float:
    """Total probability the labels carry (0 for a label absent from the engine's answer)."""
    return sum(math.exp(v) for v in logprobs.values() if v > -math.inf)


def first_probability(
    logprobs: dict[str, float], first: str, second: str, min_mass: float
) -> float | None:
    """p(first) renormalised over the two labels; None (no verdict) when either label is
    absent from the returned log-probabilities or both carry less than `min_mass`."""
    a, b = logprobs.get(first, -math.inf), logprobs.get(second, -math.inf)
    if a == -math.inf or b == -math.inf or label_mass({first: a, second: b}) < min_mass:
        return None
    top = max(a, b)
    ea, eb = math.exp(a - top), math.exp(b - top)
    return ea / (ea + eb)


def row_means(matrix: list[list[float]]) -> list[float]:
    """Score of each response: its mean win probability, diagonal included."""
    return [sum(row) / len(row) for row in matrix]


def assemble(
    k: int,
    measured: dict[Pair, float],
    judgments: list[dict],
    diagnostics: Diagnostics,
    tie_band: float,
    consistent: dict[Pair, int],
    flags: list[str],
) -> Verdicts:
    """Complete P from the measured cells, score the answers and count the matrix diagnostics.

    P and the scores are rounded to the float32 the record stores before anything is decided
    from them, so ties, cycles and pairs read the same from the record as they did here.
    """
    matrix, estimated = bradley_terry.complete(k, measured)
    matrix = [[as_stored(p) for p in row] for row in matrix]  # decide on what is stored
    diagnostics.observe_matrix(matrix, estimated, tie_band)
    return Verdicts(
        matrix=matrix,
        estimated=estimated,
        scores=[as_stored(s) for s in row_means(matrix)],
        judgments=judgments,
        flags=flags,
        consistent=consistent,
        diagnostics=diagnostics,
    )


def count_flag(flags: list[str], name: str, count: int) -> None:
    """Append `name:count` when count is positive (flags carry counts, DESIGN §5)."""
    if count:
        flags.append(f"{name}:{count}")
