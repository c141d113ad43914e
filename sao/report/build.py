"""Compute a report: every number of the JSON file and the series the pictures are drawn from.

Lexical metrics cover every prompt and every response. Embedding metrics cover every prompt
and the first response of each record (one per prompt: a prompt's K siblings would say more
about the sampler than about the data), a seeded sample of `response_sample` of them when there
are more: responses are long, and embedding them dominates the cost on a CPU.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sao.report import coverage, spread
from sao.report.runs import RunTexts
from sao.text.bleu import self_bleu
from sao.text.duplicates import exact_duplicates, near_duplicates
from sao.text.ngrams import distinct_n
from sao.text.repetition import repetitions
from sao.text.tokens import words

CLUSTERS = 20  # k of the k-means cluster coverage
RESPONSE_SAMPLE = 5000  # first responses embedded per run (0: all)
NEIGHBOUR_SAMPLE = 2000  # prompts whose nearest-neighbour cosine is drawn
MAP_POINTS = 4000  # points per run on the 2-D map
TOP_NGRAMS = 15
TOP_CLUSTERS = 5
EXAMPLES = 3


@dataclass
class RunSeries:
    """Per-run arrays behind the pictures (not written to the JSON)."""

    prompt_words: list[int]
    response_tokens: list[int]
    neighbour_cosine: np.ndarray
    margins: list[float]
    map_xy: np.ndarray
    map_labels: list[str]


@dataclass
class Report:
    """The numbers (`data`, written as JSON) and the series behind the pictures."""

    data: dict[str, Any]
    series: dict[str, RunSeries] = field(default_factory=dict)


def build(
    runs: Sequence[RunTexts],
    embed: Callable[[list[str]], np.ndarray],
    color_by: str = "life_stage",
    seed: int = 0,
    progress: Callable[[str], None] = lambda step: None,
    response_sample: int = RESPONSE_SAMPLE,
) -> Report:
    """The report of one run, or of a run beside its baseline (runs[1])."""
    progress("embedding prompts")
    prompt_vecs = {r.name: embed(r.prompts) for r in runs}
    progress("embedding responses")
    response_vecs = {r.name: embed(sample(r.first_responses, response_sample, seed)) for r in runs}
    progress("clustering")
    prompt_clusters = spread.cluster_coverage(prompt_vecs, CLUSTERS, seed)
    response_clusters = spread.cluster_coverage(response_vecs, CLUSTERS, seed)
    map_xy = _project(prompt_vecs)
    report = Report(data={"sao_report": 1, "runs": {}})
    for run in runs:
        progress(f"text metrics: {run.name}")
        prompts = text_metrics(run.prompts, prompt_vecs[run.name])
        prompts["clusters"] = prompt_clusters[run.name]
        responses = text_metrics(run.responses, response_vecs[run.name])
        responses["clusters"] = response_clusters[run.name]
        repeated = set(prompts.pop("_repeated"))
        near_pairs = prompts.pop("_near")
        responses.pop("_repeated")
        responses.pop("_near")
        attrs = coverage.attributes_of(run.persona_ids) if run.personas_enabled else []
        report.data["runs"][run.name] = {
            "path": str(run.path),
            "status": run.manifest.get("status"),
            "model": run.manifest.get("model", {}).get("name"),
            "config_hash": run.manifest.get("config_hash"),
            "filters": run.manifest.get("config", {}).get("filters"),
            "personas": run.personas_enabled,
            "records": len(run.prompts),
            "prompts": prompts,
            "responses": responses,
            "persona_coverage": coverage.coverage(
                attrs, [i in repeated for i in range(len(run.prompts))]
            )
            if run.personas_enabled
            else None,
            "judge": _judge(run),
            "top_ngrams": top_ngrams(run.prompts),
            "near_duplicate_clusters": duplicate_clusters(run.prompts, near_pairs),
        }
        report.series[run.name] = RunSeries(
            prompt_words=[len(words(p)) for p in run.prompts],
            response_tokens=run.response_tokens,
            neighbour_cosine=neighbour_cosine(prompt_vecs[run.name], seed),
            margins=run.margins,
            map_xy=_sample_rows(map_xy[run.name], seed),
            map_labels=_sample_list(_labels(run, attrs, color_by), seed),
        )
    return report


def text_metrics(texts: list[str], vectors: np.ndarray) -> dict[str, Any]:
    """Duplicate, repetition, n-gram and embedding measures of a list of texts."""
    n = len(texts)
    repeated = repetitions(texts)
    near = near_duplicates(texts)
    lengths = [len(words(t)) for t in texts]
    return {
        "count": n,
        "exact_duplicate_rate": len(exact_duplicates(texts)) / n,
        "near_duplicate_rate": len(near) / n,
        "repetition_rate": len(repeated) / n,
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "self_bleu": self_bleu(texts),
        "embedded": len(vectors),
        "mean_pairwise_cosine": spread.mean_pairwise_cosine(vectors),
        "vendi_score": spread.vendi_score(vectors),
        "words": _summary(lengths),
        "_repeated": repeated,
        "_near": near,
    }


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "median": statistics.median(ordered),
        "p90": ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)],  # nearest rank
        "max": ordered[-1],
    }


def _judge(run: RunTexts) -> dict[str, Any]:
    """The manifest's judge totals plus the margins of the selected pairs."""
    totals = run.manifest.get("totals", {})
    return {
        "mode": run.manifest.get("config", {}).get("judge", {}).get("mode"),
        "pairs": len(run.margins),
        "margin": _summary(run.margins),
        "diagnostics": totals.get("judge", {}),
        "prompt_rejections": totals.get("prompt_rejections", {}),
        "response_tokens": _summary(run.response_tokens),
    }


def top_ngrams(texts: list[str], n: int = 3, top: int = TOP_NGRAMS) -> list[dict[str, Any]]:
    """The word n-grams found in the most texts, with the share of texts holding each."""
    df: Counter[str] = Counter()
    for text in texts:
        toks = words(text)
        df.update({" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)})
    return [
        {"ngram": gram, "texts": count, "share": count / len(texts)}
        for gram, count in df.most_common(top)
    ]


def duplicate_clusters(
    texts: list[str], near_pairs: list[tuple[int, int]], top: int = TOP_CLUSTERS
) -> list[dict[str, Any]]:
    """The largest groups of near-duplicate texts (chains of `near_pairs`), with examples."""
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for later, earlier in near_pairs:
        parent[root(later)] = root(earlier)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(root(i), []).append(i)
    largest = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
    return [
        {"size": len(g), "share": len(g) / len(texts), "examples": [texts[i] for i in g[:EXAMPLES]]}
        for g in largest[:top]
    ]


def neighbour_cosine(vectors: np.ndarray, seed: int, sample: int = NEIGHBOUR_SAMPLE) -> np.ndarray:
    """For up to `sample` texts, the cosine to their nearest other text in the run."""
    x = spread.unit_rows(vectors).astype(np.float32)
    n = len(x)
    if n < 2:
        return np.zeros(0)
    rows = np.random.default_rng(seed).permutation(n)[:sample]
    best = np.full(len(rows), -1.0, dtype=np.float32)
    for start in range(0, n, 8192):
        sims = x[rows] @ x[start : start + 8192].T
        own = (rows >= start) & (rows < start + 8192)
        sims[own, rows[own] - start] = -1.0
        best = np.maximum(best, sims.max(axis=1))
    return best


def _project(vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All runs' vectors on the same first two principal axes."""
    pooled = np.vstack([spread.unit_rows(v) for v in vectors.values()])
    centred = pooled - pooled.mean(axis=0)
    if len(pooled) < 3:
        xy = np.zeros((len(pooled), 2))
    else:
        rows = _sample_index(len(centred), 20000, 0)  # axes from every run, not the first
        _, _, vt = np.linalg.svd(centred[rows], full_matrices=False)
        xy = centred @ vt[:2].T
    out, start = {}, 0
    for name, v in vectors.items():
        out[name] = xy[start : start + len(v)]
        start += len(v)
    return out


def _labels(run: RunTexts, attrs: list[dict[str, str]], color_by: str) -> list[str]:
    if not run.personas_enabled:
        return ["no persona"] * len(run.prompts)
    return [a.get(color_by, "unknown") for a in attrs] if attrs else ["unknown"] * len(run.prompts)


def _sample_index(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of `size` out of n (all of them when size is 0 or ≥ n)."""
    if size <= 0 or n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def sample(items: list[str], size: int, seed: int) -> list[str]:
    """A seeded sample of `size` items, in their original order (all when size is 0 or ≥ n)."""
    return [items[i] for i in _sample_index(len(items), size, seed)]


def _sample_rows(xy: np.ndarray, seed: int) -> np.ndarray:
    return xy[_sample_index(len(xy), MAP_POINTS, seed)]


def _sample_list(items: list[str], seed: int) -> list[str]:
    return sample(items, MAP_POINTS, seed)
