"""The self-contained HTML page: tables of the report's numbers and its inline pictures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

import sao
from sao.report import figures
from sao.report.build import MAP_POINTS, Report

#: (key, label, kind, what it means) for the prompt and response tables
TEXT_ROWS = [
    ("count", "texts", "int", "prompts, or responses (all K per record)"),
    ("exact_duplicate_rate", "exact duplicates", "pct", "equal to an earlier text"),
    (
        "near_duplicate_rate",
        "near-duplicates",
        "pct",
        "word-3-gram Jaccard ≥ 0.9 with an earlier text",
    ),
    (
        "repetition_rate",
        "repetition",
        "pct",
        "ROUGE-L F1 > 0.7 with an earlier text (Self-Instruct)",
    ),
    ("distinct_1", "distinct-1", "f3", "distinct words / words"),
    ("distinct_2", "distinct-2", "f3", "distinct word pairs / word pairs"),
    ("distinct_3", "distinct-3", "f3", "distinct word 3-grams / word 3-grams"),
    (
        "self_bleu",
        "self-BLEU",
        "f3",
        "BLEU-4 of each text against all others (lower: more diverse)",
    ),
    ("embedded", "embedded", "int", "texts behind the embedding measures below"),
    ("mean_pairwise_cosine", "mean cosine", "f3", "mean embedding cosine over all pairs"),
    ("vendi_score", "Vendi score", "f1", "effective number of distinct texts (embeddings)"),
    ("clusters.hit", "clusters hit", "pct", "share of the k-means clusters of all runs it reaches"),
    ("clusters.entropy", "cluster entropy", "f3", "spread over those clusters (1 = even)"),
    ("words.mean", "mean words", "f1", "words per text"),
]
SUMMARY_ROWS = [
    ("records", "records", "int", ""),
    ("prompts.repetition_rate", "prompt repetition", "pct", "the SAO paper's diversity measure"),
    ("prompts.near_duplicate_rate", "prompt near-duplicates", "pct", ""),
    ("prompts.vendi_score", "prompt Vendi score", "f1", ""),
    ("prompts.self_bleu", "prompt self-BLEU", "f3", ""),
    ("judge.pairs", "pairs", "int", ""),
    ("judge.margin.mean", "mean pair margin", "f3", ""),
]
JUDGE_ROWS = [
    ("mode", "mode", "str", ""),
    ("pairs", "pairs", "int", "preference pairs selected"),
    ("margin.mean", "mean margin", "f3", "score gap of the selected pairs"),
    ("diagnostics.position_bias_rate", "raw flips", "pct", "verdicts that follow the position"),
    ("diagnostics.tie_rate", "ties", "pct", "judged pairs within the tie band"),
    ("diagnostics.intransitive_rate", "intransitive", "pct", "triples with a cycle"),
    ("diagnostics.parse_failures", "parse failures", "int", "judge replies not understood"),
    ("diagnostics.length_corr", "length correlation", "f2", "score vs answer length"),
    ("response_tokens.mean", "mean response tokens", "f1", ""),
]


def lookup(data: dict[str, Any] | None, dotted: str) -> Any:
    """data["a"]["b"] for "a.b"; None when any part is missing."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def fmt(value: Any, kind: str) -> str:
    """A number as the tables show it ("–" for none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{100 * value:.2f} %"
    if kind == "int":
        return f"{int(value):,}"
    if kind.startswith("f"):
        return f"{value:.{int(kind[1:])}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int = 1) -> Markup:
    """An escaped HTML table; columns from `numeric_from` on (but the last) align right."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for k, cell in enumerate(row):
            cls = ' class="num"' if numeric_from <= k < len(row) - 1 else ""
            cells.append(f"<td{cls}>{escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return Markup(f"<table><tr>{head}</tr>{''.join(body)}</table>")


def metric_table(
    runs: dict[str, Any], spec: list[tuple[str, str, str, str]], section: str
) -> Markup:
    """Rows of metrics, one column per run, then what each means."""
    parts = [r.get(section) if section else r for r in runs.values()]
    rows = [
        [label, *(fmt(lookup(part, key), kind) for part in parts), help_]
        for key, label, kind, help_ in spec
    ]
    return table(["measure", *runs, "meaning"], rows)


def coverage_table(cov: dict[str, Any] | None) -> Markup:
    """Per attribute table: values hit, entropy, and the most repetitive values."""
    if cov is None:
        return Markup("<p>No personas in this run (the <code>--no-personas</code> ablation).</p>")
    if not cov["tables"]:
        return Markup("<p>These personas have no attribute tables (not the bundled library).</p>")
    rows = []
    for name, t in cov["tables"].items():
        worst = ", ".join(
            f"{v['value']} {100 * v['repetition_rate']:.0f} % of {v['prompts']}"
            for v in t["most_repetitive"][:3]
        )
        rows.append(
            [name, f"{t['hit']} of {t['values']}", f"{t['entropy']:.3f}", worst or "none repeated"]
        )
    return table(["attribute", "values hit", "entropy", "most repetitive values"], rows)


def filters_text(filters: dict[str, Any] | None) -> str:
    """A run's prompt filters in a few words ("off" when none was on)."""
    if not filters:
        return "unknown"
    parts = ["exact"] if filters.get("exact") else []
    if filters.get("near_duplicate") is not None:
        parts.append(f"near-duplicate ≥ {filters['near_duplicate']}")
    if filters.get("rouge_l") is not None:
        parts.append(f"ROUGE-L > {filters['rouge_l']}")
    return ", ".join(parts) or "off"


def environment() -> jinja2.Environment:
    """The report pages' templates (one page style: base.html.j2)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render(report: Report, color_by: str) -> str:
    """The whole page as one HTML string."""
    runs = report.data["runs"]
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            title=" vs ".join(Path(r["path"]).name for r in runs.values()),
            version=sao.__version__,
            runs=runs,
            filters={name: filters_text(r.get("filters")) for name, r in runs.items()},
            map_points=MAP_POINTS,
            tables={
                "summary": metric_table(runs, SUMMARY_ROWS, ""),
                "prompts": metric_table(runs, TEXT_ROWS, "prompts"),
                "responses": metric_table(runs, TEXT_ROWS, "responses"),
                "judge": metric_table(runs, JUDGE_ROWS, "judge"),
            },
            images={
                "map": figures.embedding_map(report.series, color_by),
                "histograms": figures.histograms(report.series),
            },
            coverage={name: coverage_table(r["persona_coverage"]) for name, r in runs.items()},
            ngrams={
                name: table(
                    ["3-gram", "prompts", "share"],
                    [
                        [g["ngram"], g["texts"], f"{100 * g['share']:.1f} %"]
                        for g in r["top_ngrams"]
                    ],
                )
                for name, r in runs.items()
            },
            clusters={name: r["near_duplicate_clusters"] for name, r in runs.items()},
        )
    )
