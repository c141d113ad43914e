"""`sao report DIR` on an iterate folder: per-round curves (HTML with plots) and their JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sao
from sao.errors import SaoError
from sao.report import finite
from sao.report.html import environment, fmt, metric_table, table
from sao.rounds.ledger import read_ledger
from sao.rounds.results import COLUMNS, round_metrics, rows, stage_seconds
from sao.store import write_checked

# one panel per group of columns that share a scale
PANELS = (
    (
        "frozen judge, π_r against π_0 and π_(r−1)",
        ("win_vs_0", "tie_vs_0", "win_vs_0_lm", "win_vs_prev", "loss_vs_prev", "win_vs_prev_lm"),
    ),
    ("drift: KL estimates (nats per answer)", ("kl_0", "kl_prev")),
    ("length (tokens)", ("tokens",)),
    ("degeneration", ("truncated", "distinct_1", "distinct_2", "self_bleu", "rep_3gram")),
    ("round data and its judge", ("margin", "data_ties", "cr_cosine", "judge_agree")),
    ("probes: judge accuracy and likelihood", ("probe_judge", "probe_lik")),
)


def curves(table_rows: list[dict[str, Any]]) -> str:
    """The per-round curves as one inline PNG."""
    from sao.report.figures import data_uri, plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    rounds = [row["round"] for row in table_rows]
    for ax, (title, names) in zip(axes.flat, PANELS, strict=True):
        for name in names:
            points = [(row["round"], row[name]) for row in table_rows if row[name] is not None]
            if points:
                ax.plot([r for r, _ in points], [v for _, v in points], marker="o", label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round")
        ax.set_xticks(rounds)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return data_uri(fig)


def write_iterate_report(
    folder: str | Path, html_path: str | Path | None = None, json_path: str | Path | None = None
) -> tuple[dict[str, Any], Path, Path]:
    """Read the loop's ledger and rounds; write report.html and report.json (default: DIR)."""
    folder = Path(folder)
    ledger = read_ledger(folder)
    metrics = round_metrics(folder, ledger)
    if not metrics:
        raise SaoError(f"{folder}: no round is evaluated yet; nothing to draw")
    table_rows = rows(metrics)
    html_file = Path(html_path) if html_path else folder / "report.html"
    json_file = Path(json_path) if json_path else folder / "report.json"
    data = {
        "folder": str(folder),
        "status": ledger["status"],
        "stopped": ledger["stopped"],
        "best_round": ledger["best_round"],
        "iterate": ledger["config"]["iterate"],
        "rounds": table_rows,
        "seconds": {str(r): s for r, s in stage_seconds(ledger).items()},
        "metrics": {str(r): m for r, m in metrics.items()},
    }
    seconds = stage_seconds(ledger)
    stages = ("anchors", "generate", "train", "evaluate")
    page = (
        environment()
        .get_template("iterate.html.j2")
        .render(
            title=folder.name,
            version=sao.__version__,
            ledger=ledger,
            image=curves(table_rows),
            measures=metric_table(
                {f"round {r}": m for r, m in sorted(metrics.items())},
                [(key, name, kind, meaning) for name, key, kind, meaning in COLUMNS],
                "",
            ),
            seconds=table(
                ["round", *stages, ""],
                [
                    [str(r), *(fmt(s.get(st), "f1") for st in stages), ""]
                    for r, s in sorted(seconds.items())
                ],
            ),
        )
    )
    write_checked(json_file, (json.dumps(finite(data), indent=2) + "\n").encode("utf-8"))
    write_checked(html_file, page.encode("utf-8"))
    return data, html_file, json_file
