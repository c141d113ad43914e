"""Which pairs the judge compares, and a Bradley–Terry fit for the cells it did not measure.

With K answers, judging every pair costs K(K−1)/2 comparisons (two calls each). A budget of
`opponents` per answer judges a ring schedule instead (offsets 1, 2, … around a circle, so the
comparison graph stays connected) and fills the other cells from strengths θ fitted to the
measured ones: P[i][j] = σ(θ_i − θ_j).
"""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]


def schedule(k: int, opponents: int | None) -> list[Pair]:
    """Unordered pairs (i < j) to judge: all of them, or a ring giving each answer ~`opponents`.

    Offsets 1 … n//2 around the circle give every answer n opponents for even n; odd n adds the
    diameter offset k/2 when K is even (exactly n), else one more ring offset (n + 1). The ring
    itself (offset 1, two opponents) is the smallest schedule that keeps P identifiable.
    """
    if opponents is None or opponents >= k - 1:
        return [(i, j) for i in range(k) for j in range(i + 1, k)]
    offsets = set(range(1, max(1, opponents // 2) + 1))
    if opponents % 2 and opponents > 1:
        offsets.add(k // 2 if k % 2 == 0 else opponents // 2 + 1)
    pairs: set[Pair] = set()
    for offset in sorted(offsets):
        for i in range(k):
            j = (i + offset) % k
            pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def fit_strengths(k: int, measured: dict[Pair, float], l2: float = 0.01) -> np.ndarray:
    """Maximum-likelihood θ (mean 0) for soft outcomes P[i][j], with a weak L2 prior.

    The prior keeps θ finite when an answer wins every comparison outright (text verdicts)
    and puts an answer with no measured comparison at the average strength.
    """
    theta = np.zeros(k)
    if not measured:
        return theta
    rows = np.array([i for i, _ in measured])
    cols = np.array([j for _, j in measured])
    target = np.array(list(measured.values()), dtype=float)
    for _ in range(50):  # Newton's method on a concave objective: converges in a handful
        p = 1.0 / (1.0 + np.exp(-(theta[rows] - theta[cols])))
        resid = target - p
        grad = -l2 * theta
        np.add.at(grad, rows, resid)
        np.add.at(grad, cols, -resid)
        w = p * (1.0 - p)
        hess = -l2 * np.eye(k)
        np.add.at(hess, (rows, rows), -w)
        np.add.at(hess, (cols, cols), -w)
        np.add.at(hess, (rows, cols), w)
        np.add.at(hess, (cols, rows), w)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return theta - theta.mean()


def complete(k: int, measured: dict[Pair, float]) -> tuple[list[list[float]], list[list[bool]]]:
    """P with measured cells as given and the rest from a Bradley–Terry fit; plus the mask."""
    matrix = [[0.5] * k for _ in range(k)]
    estimated = [[False] * k for _ in range(k)]
    missing = [(i, j) for i in range(k) for j in range(i + 1, k) if (i, j) not in measured]
    theta = fit_strengths(k, measured) if missing else np.zeros(k)
    for i in range(k):
        for j in range(i + 1, k):
            if (i, j) in measured:
                pij = measured[(i, j)]
            else:
                pij = float(1.0 / (1.0 + np.exp(-(theta[i] - theta[j]))))
                estimated[i][j] = estimated[j][i] = True
            matrix[i][j], matrix[j][i] = pij, 1.0 - pij
    return matrix, estimated


def identified(estimated: list[list[bool]]) -> bool:
    """True when the measured cells connect all K answers, so every estimated cell follows from
    measurements; otherwise the fit only guesses between the unconnected groups."""
    k = len(estimated)
    reached, frontier = {0}, [0]
    while frontier:
        i = frontier.pop()
        for j in range(k):
            if j not in reached and not estimated[i][j]:
                reached.add(j)
                frontier.append(j)
    return len(reached) == k
