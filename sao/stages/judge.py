"""Stage 3: the pairwise self-judge, both orders, from verdict-label log-probabilities (DESIGN §4).

For responses i and j the judge sees (i first, j second) and (j first, i second); with
p_fwd = p(first wins | i first) and p_swp = p(first wins | j first),
P[i][j] = ½·[p_fwd + (1 − p_swp)]. Swapping i and j swaps the two calls, so P[j][i] = 1 − P[i][j]
and position bias cancels by construction. Scores are row means of P (diagonal ½).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from sao.config import JudgeConfig
from sao.engines.base import Engine, Message, normalise_pair
from sao.templates import Template

LOW_LABEL_MASS = 0.5  # below this total probability on the two labels, the verdict is weak


@dataclass
class Verdicts:
    """The judge's output for one record."""

    matrix: list[list[float]]
    scores: list[float]
    judgments: list[dict] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def ordered_pairs(k: int) -> list[tuple[int, int, str]]:
    """Every judge call for K responses: (shown first, shown second, order)."""
    calls = []
    for i in range(k):
        for j in range(i + 1, k):
            calls.append((i, j, "forward"))
            calls.append((j, i, "swapped"))
    return calls


def request(
    prompt: str, first: str, second: str, template: Template, labels: tuple[str, str]
) -> list[Message]:
    """The judge conversation for one ordered pair."""
    content = template.render(
        prompt=prompt, first=first, second=second, first_label=labels[0], second_label=labels[1]
    )
    return [{"role": "user", "content": content}]


def preference_matrix(k: int, p_first: dict[tuple[int, int], float]) -> list[list[float]]:
    """P from the first-wins probability of every ordered pair (keys: (shown first, second))."""
    matrix = [[0.5] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1, k):
            pij = 0.5 * (p_first[(i, j)] + (1.0 - p_first[(j, i)]))
            matrix[i][j], matrix[j][i] = pij, 1.0 - pij
    return matrix


def row_means(matrix: list[list[float]]) -> list[float]:
    """Score of each response: its mean win probability, diagonal included."""
    return [sum(row) / len(row) for row in matrix]


def judge(
    engine: Engine,
    items: list[tuple[str, list[str]]],
    template: Template,
    cfg: JudgeConfig,
) -> list[Verdicts]:
    """Judge every record's responses in one batched engine call; items are (prompt, texts)."""
    labels = tuple(cfg.labels)
    conversations, index = [], []
    for rec, (prompt, texts) in enumerate(items):
        for first, second, order in ordered_pairs(len(texts)):
            conversations.append(request(prompt, texts[first], texts[second], template, labels))
            index.append((rec, first, second, order))
    logprobs = engine.label_logprobs(conversations, list(labels)) if conversations else []

    per_record: list[dict[tuple[int, int], float]] = [{} for _ in items]
    verdicts = [Verdicts(matrix=[], scores=[]) for _ in items]
    low_mass = [0] * len(items)
    for (rec, first, second, order), lp in zip(index, logprobs, strict=True):
        p = normalise_pair(lp, labels[0], labels[1])
        per_record[rec][(first, second)] = p
        mass = sum(math.exp(v) for v in lp.values() if v > -math.inf)
        low_mass[rec] += mass < LOW_LABEL_MASS
        verdicts[rec].judgments.append(
            {"i": first, "j": second, "order": order, "p_first": p, "raw": json.dumps(lp)}
        )
    for rec, (_, texts) in enumerate(items):
        v = verdicts[rec]
        v.matrix = preference_matrix(len(texts), per_record[rec])
        v.scores = row_means(v.matrix)
        if low_mass[rec]:
            v.flags.append(f"judge_low_label_mass:{low_mass[rec]}")
    return verdicts
