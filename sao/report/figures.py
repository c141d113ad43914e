"""The report's pictures, drawn with matplotlib and returned as inline PNG data URIs."""

from __future__ import annotations

import base64
import io
from collections import Counter

import matplotlib

matplotlib.use("Agg")  # no display: the report is written to a file

import matplotlib.pyplot as plt
import numpy as np

from sao.report.build import RunSeries

RUN_COLORS = {"run": "#1f77b4", "baseline": "#d62728"}
MAX_LEGEND = 9  # label values beyond the most frequent ones are drawn grey as "other"
DPI = 100


def data_uri(fig: plt.Figure) -> str:
    """The figure as a base64 PNG data URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def embedding_map(series: dict[str, RunSeries], color_by: str) -> str:
    """One panel per run: prompts on the shared first two principal axes, coloured by label."""
    fig, axes = plt.subplots(1, len(series), figsize=(6.5 * len(series), 5.5), squeeze=False)
    everything = np.vstack([s.map_xy for s in series.values()])
    lo, hi = everything.min(axis=0), everything.max(axis=0)
    pad = (hi - lo) * 0.05 + 1e-9
    for ax, (name, s) in zip(axes[0], series.items(), strict=True):
        common = [v for v, _ in Counter(s.map_labels).most_common(MAX_LEGEND)]
        labels = [v if v in common else "other" for v in s.map_labels]
        palette = plt.get_cmap("tab10")
        for k, value in enumerate([*common, "other"]):
            mask = np.array([label == value for label in labels])
            if not mask.any():
                continue
            color = "#bbbbbb" if value == "other" else palette(k % 10)
            ax.scatter(*s.map_xy[mask].T, s=9, alpha=0.75, color=color, label=value)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_title(f"{name}: {len(s.map_xy)} prompts, coloured by {color_by}")
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
        ax.legend(fontsize=7, loc="best", markerscale=1.5)
    return data_uri(fig)


def histograms(series: dict[str, RunSeries]) -> str:
    """Prompt and response lengths, nearest-neighbour cosine and pair margins, runs overlaid."""
    panels = [
        ("prompt length (words)", lambda s: s.prompt_words),
        ("response length (tokens)", lambda s: s.response_tokens),
        ("nearest-neighbour cosine of a prompt", lambda s: s.neighbour_cosine),
        ("judge margin of a pair", lambda s: s.margins),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, (title, get) in zip(axes.flat, panels, strict=True):
        values = {name: np.asarray(get(s), dtype=float) for name, s in series.items()}
        values = {name: v[np.isfinite(v)] for name, v in values.items()}
        pooled = np.concatenate([v for v in values.values() if len(v)] or [np.zeros(1)])
        bins = np.histogram_bin_edges(pooled, bins=30)
        for name, v in values.items():
            if len(v):
                weights = np.full(len(v), 1 / len(v))
                ax.hist(
                    v,
                    bins=bins,
                    weights=weights,
                    histtype="step",
                    linewidth=1.8,
                    color=RUN_COLORS.get(name),
                    label=f"{name} (n={len(v)})",
                )
        ax.set_title(title)
        ax.set_ylabel("share")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return data_uri(fig)
