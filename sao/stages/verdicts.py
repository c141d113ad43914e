"""What every judge mode returns: per-call outcomes in, one preference matrix per record out."""

from __future__ import annotations

from dataclasses import dataclass, field

from sao.stages import bradley_terry
from sao.stages.bradley_terry import Pair
from sao.stages.judge_diagnostics import Diagnostics


@dataclass(frozen=True)
class Call:
    """One judge engine call: p(first wins) or a score, the verdict, and what it cost."""

    verdict: str  # "first" | "second" | "tie" | a rubric score | "unparsed"
    tokens: int  # tokens generated (1 for a label read from the next-token distribution)
    raw: str  # label log-probs as JSON, or the generated text
    p_first: float | None = None
    score: float | None = None
    low_label_mass: bool = False


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
    """Complete P from the measured cells, score the answers and count the matrix diagnostics."""
    matrix, estimated = bradley_terry.complete(k, measured)
    diagnostics.observe_matrix(matrix, estimated, tie_band)
    return Verdicts(
        matrix=matrix,
        estimated=estimated,
        scores=row_means(matrix),
        judgments=judgments,
        flags=flags,
        consistent=consistent,
        diagnostics=diagnostics,
    )


def count_flag(flags: list[str], name: str, count: int) -> None:
    """Append `name:count` when count is positive (flags carry counts, DESIGN §5)."""
    if count:
        flags.append(f"{name}:{count}")
