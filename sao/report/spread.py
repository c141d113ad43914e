"""Diversity of embedding vectors: mean pairwise cosine and the Vendi score.

Vendi score (Friedman & Dieng, 2023): exp of the Shannon entropy of the eigenvalues of K/n,
K the cosine-similarity matrix of n unit vectors. n identical vectors score 1; n orthogonal ones
score n. K/n = XXᵀ/n shares its non-zero eigenvalues with XᵀX/n (d×d), so the cost is O(n·d²),
not O(n³).
"""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine similarity over all pairs i < j, from the sum vector: O(n·d)."""
    x = unit_rows(vectors)
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    self_sims = (x * x).sum()
    return float((total @ total - self_sims) / (n * (n - 1)))


def vendi_score(vectors: np.ndarray) -> float:
    """exp(−Σ λ log λ) over the eigenvalues λ of K/n, K = cosine similarities."""
    x = unit_rows(vectors)
    n = len(x)
    if n == 0:
        return 0.0
    eig = np.linalg.eigvalsh(x.T @ x / n)
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


def cluster_coverage(
    runs: dict[str, np.ndarray], clusters: int, seed: int = 0
) -> dict[str, dict[str, float]]:
    """k-means over all runs' vectors together; per run, the share of clusters it hits and the
    entropy of its spread over them (normalised: 1 = evenly over all k clusters)."""
    from sklearn.cluster import KMeans

    pooled = np.vstack([unit_rows(v) for v in runs.values() if len(v)])
    k = max(1, min(clusters, len(pooled)))
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(pooled)
    out, start = {}, 0
    for name, vectors in runs.items():
        mine = labels[start : start + len(vectors)]
        start += len(vectors)
        counts = np.bincount(mine, minlength=k)
        share = counts[counts > 0] / max(len(mine), 1)
        entropy = float(-(share * np.log(share)).sum() / np.log(k)) if k > 1 else 0.0
        out[name] = {"clusters": k, "hit": float((counts > 0).sum() / k), "entropy": entropy}
    return out
