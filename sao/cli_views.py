"""What the `sao` commands print: the plan of a dry run, the summary of a run, its judge
diagnostics, the headline numbers of a report and the tables of a judge-eval.

`out` takes the tables (stdout); `err` the progress, notes and warnings (stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(width=None if sys.stdout.isatty() else 120)  # logs and pipes: wide tables fit
err = Console(stderr=True)


def print_plan(result: dict[str, Any]) -> None:
    """The resolved config and, per stage, the engine calls and tokens a run will make."""
    out.print("[bold]resolved config[/bold]")
    out.print(yaml.safe_dump(result["config"], sort_keys=False).rstrip(), markup=False)
    plan = result["plan"]
    table = Table(title=f"plan: {plan['personas']} personas in {plan['shards']} shards")
    table.add_column("stage")
    table.add_column("engine calls", justify="right")
    table.add_column("generated tokens (at most)", justify="right")
    for stage, calls in plan["calls"].items():
        table.add_row(stage, f"{calls:,}", f"{plan['max_tokens'][stage]:,}")
    out.print(table)


def print_summary(manifest: dict[str, Any], out_dir: str) -> None:
    """Tokens and speed per stage, counts, rejections, judge diagnostics and where the data is."""
    t = manifest["totals"]
    table = Table(title="sao generate: done")
    table.add_column("stage")
    table.add_column("tokens", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("throughput", justify="right")
    for stage in ("prompts", "responses", "judge"):
        tokens, secs = t["tokens"].get(stage, 0), t["wall_s"].get(stage, 0.0)
        count, unit = (t["judge_calls"], "calls/s") if stage == "judge" else (tokens, "tok/s")
        table.add_row(stage, f"{tokens:,}", f"{secs:.1f}", f"{count / max(secs, 1e-9):,.0f} {unit}")
    out.print(table)
    startup = t.get("startup_s")
    if startup:
        out.print(
            f"start-up (this invocation): {startup['prepare']:.1f} s preparing (personas, "
            f"model files, checks), {startup['engine_load']:.1f} s loading the engine "
            "(imports, model load); stages as above"
        )
    k = manifest["config"]["responses"]["samples"]
    out.print(
        f"{t['records']} records (K={k}), {t['pairs']} pairs, "
        f"{t['prompts_rejected']} of {t['personas']} personas without a usable prompt"
    )
    if t["prompt_rejections"]:
        rejected = sorted(t["prompt_rejections"].items())
        out.print("rejected prompt candidates: " + ", ".join(f"{k}={v}" for k, v in rejected))
    _print_judge_stats(manifest["config"]["judge"]["mode"], t.get("judge", {}))
    if t["flags"]:
        out.print("flags: " + ", ".join(f"{k}={v}" for k, v in sorted(t["flags"].items())))
    out.print(
        f"data: {Path(out_dir) / 'shard-*.arrow'}  manifest: {Path(out_dir) / 'manifest.json'}"
    )


def _print_judge_stats(mode: str, j: dict[str, Any]) -> None:
    """One table of the run's judge diagnostics (DESIGN §4)."""
    if not j.get("records"):
        return
    table = Table(title=f"judge ({mode}): how far to trust the labels")
    for column in ("measure", "value", "meaning"):
        table.add_column(column)
    rows = [
        ("raw flips", _fmt(j["position_bias_rate"]), "pairs whose verdict follows the position"),
        ("first wins", _fmt(j["first_wins_rate"]), "single-order verdicts for answer shown first"),
        ("ties", _fmt(j["tie_rate"]), "judged pairs with P within tie_band of 1/2"),
        (
            "intransitive",
            _fmt(j["intransitive_rate"]),
            "triples of answers with a cycle in P (no ties)",
        ),
        ("no verdict", str(j["parse_failures"]), "judge calls counted, not guessed"),
        (
            "... no label mass",
            str(j.get("label_mass_failures", 0)),
            "of them: labels absent or under judge.min_label_mass",
        ),
        ("estimated cells", str(j["estimated_cells"]), "pairs filled by the Bradley-Terry fit"),
        (
            "pair margin",
            _fmt(j["pair_margin_mean"], pct=False, digits=3),
            "mean score gap of pairs",
        ),
        ("length corr", _fmt(j["length_corr"], pct=False, digits=2), "score vs answer tokens"),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)
    if mode != "rubric" and j["decisive_pairs"]:
        out.print("raw flips are single-order verdicts; judging both orders cancels them in P")


def print_report(runs: dict[str, Any]) -> None:
    """The headline numbers, one column per run; a warning when the runs filtered prompts
    differently."""
    from sao.report.html import SUMMARY_ROWS, TEXT_ROWS, filters_text, fmt, lookup

    table = Table(title="sao report")
    table.add_column("measure")
    for name in runs:
        table.add_column(name, justify="right")
    shown = {"count", "words.mean", "embedded", "clusters.hit", "clusters.entropy"}
    rows = [
        *SUMMARY_ROWS[:1],
        *((f"prompts.{k}", f"prompt {label}", kind, "") for k, label, kind, _ in TEXT_ROWS),
        *SUMMARY_ROWS[5:],
    ]
    rows = [row for row in rows if row[0].removeprefix("prompts.") not in shown]
    for key, label, kind, _ in rows:
        table.add_row(label, *(fmt(lookup(r, key), kind) for r in runs.values()))
    out.print(table)
    filters = {name: filters_text(r.get("filters")) for name, r in runs.items()}
    if len(set(filters.values())) > 1:
        err.print(
            f"warning: the runs used different prompt filters {filters}; rates not comparable"
        )


def print_judge_eval(result: dict[str, Any]) -> None:
    """Accuracy and biases per judge mode, accuracy per probe kind, agreement between modes."""
    title = f"judge-eval: {result['probes']} probes, {result['model']} on {result['engine']}"
    table = Table(title=title)
    table.add_column("mode", no_wrap=True)
    for column in ("accuracy", "pos. bias", "raw flips", "ties", "unparsed", "gen tok", "in tok"):
        table.add_column(column, justify="right")
    for mode, r in result["modes"].items():
        table.add_row(
            mode,
            _fmt(r["accuracy"]),
            _fmt(r["position_bias_rate"]),
            _fmt(r["raw_flip_rate"]),
            _fmt(r["tie_rate"]),
            str(r["parse_failures"]),
            _fmt(r["generated_tokens_per_comparison"], pct=False),
            _fmt(r["prompt_tokens_per_comparison"], pct=False),
        )
    out.print(table)
    kinds = sorted({k for r in result["modes"].values() for k in r["by_kind"]})
    by_kind = Table(title="accuracy by probe kind")
    by_kind.add_column("mode")
    for kind in kinds:
        by_kind.add_column(kind, justify="right")
    for mode, r in result["modes"].items():
        by_kind.add_row(mode, *(_fmt(r["by_kind"].get(k)) for k in kinds))
    out.print(by_kind)
    modes = list(result["agreement"])
    agree = Table(title="agreement between modes (same verdict, better shown first)")
    agree.add_column("")
    for mode in modes:
        agree.add_column(mode.removeprefix("pairwise-"), justify="right")
    for a in modes:
        agree.add_row(a, *(_fmt(result["agreement"][a][b]) for b in modes))
    out.print(agree)
    out.print(
        "pos. bias: verdict changes when the answers swap places; raw flips: single-order "
        "verdicts that follow the position (cancelled by the swap); gen/in tok: tokens generated "
        "and read per comparison"
    )
    for mode, r in result["modes"].items():
        if r.get("rubric_scale_fit"):
            out.print(
                f"{mode}: judge.rubric_scale fitted on these probes: {r['rubric_scale_fit']:.3f}"
            )


def _fmt(value: float | None, pct: bool = True, digits: int = 1) -> str:
    """A rate as a percentage, or a number; '-' when there was nothing to measure."""
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.{digits}f}"


def print_judge_agreement(result: dict[str, Any]) -> None:
    """The run's judge beside another one: agreement, correlation, self-preference."""
    pref = result["self_preference"]
    table = Table(title=f"judge-agreement: {result['run_judge']} vs {result['other_judge']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("over", justify="right")
    table.add_row(
        "same preferred answer", _fmt(result["agreement"]), f"{result['decided_pairs']} pairs"
    )
    table.add_row(
        "same best answer",
        _fmt(result["best_answer_agreement"]),
        f"{result['best_answer_records']} records",
    )
    r = result["p_correlation"]
    table.add_row("P correlation (r)", "-" if r is None else f"{r:.3f}", f"{result['cells']} cells")
    for label, key in (
        ("run judge: run's answer wins", "run_judge_prefers_run_answer"),
        ("other judge: run's answer wins", "other_judge_prefers_run_answer"),
    ):
        table.add_row(label, _fmt(pref[key]), f"{pref['duels']} duels")
    shift = pref["self_preference"]
    table.add_row("self-preference", "-" if shift is None else f"{shift:+.3f}", "")
    out.print(table)
    out.print(
        "pairs where both judges measured P and neither calls a tie; self-preference: how much "
        "more the run's judge favours the run's answers over the other model's than the other "
        "judge does (positive: each judge leans to its own model)"
    )


def print_preview(records: list[dict]) -> None:
    """Each previewed record: persona, prompt, the K answers with scores, P, pairs, flags."""
    for number, rec in enumerate(records, start=1):
        out.rule(f"record {number} of {len(records)}")
        if rec["persona"]:
            out.print(f"[bold]persona[/bold] {escape(rec['persona'])}", soft_wrap=True)
        out.print(f"[bold]prompt[/bold] {escape(rec['prompt'][-1]['content'])}", soft_wrap=True)
        for i, (answer, score) in enumerate(zip(rec["responses"], rec["scores"], strict=True)):
            cut = " [dim](cut at max_tokens)[/dim]" if answer["finish_reason"] == "length" else ""
            out.print(f"[bold]answer {i}[/bold] score {score:.3f}{cut}", soft_wrap=True)
            out.print(answer["text"], soft_wrap=True, markup=False)
        k = len(rec["responses"])
        matrix = Table(title=escape(f"P (judged by {rec['judge_model']}; * estimated)"))
        matrix.add_column("")
        for j in range(k):
            matrix.add_column(str(j), justify="right")
        for i, row in enumerate(rec["pref_matrix"]):
            cells = [
                f"{p:.2f}{'*' if rec['pref_estimated'][i][j] else ''}" for j, p in enumerate(row)
            ]
            matrix.add_row(str(i), *cells)
        out.print(matrix)
        pairs = ", ".join(
            f"{p['chosen']} > {p['rejected']} (margin {p['margin']:.3f})" for p in rec["pairs"]
        )
        out.print(f"[bold]pairs[/bold] {pairs or 'none'}", soft_wrap=True)
        if rec["flags"]:
            out.print(f"[bold]flags[/bold] {escape(', '.join(rec['flags']))}", soft_wrap=True)
    out.print(f"{len(records)} records previewed; nothing was written")


def print_trained(result: Any) -> None:
    """What `sao train` made: the checkpoint, its data and losses, or that it was already there."""
    lineage = result.lineage
    if result.reused:
        out.print(f"{result.out} already holds this training's model; nothing to do")
        return
    metrics = lineage.get("metrics", {})
    rows = ", ".join(f"{k} {v}" for k, v in lineage.get("rows", {}).items())
    out.print(f"sao train: {lineage['algo']} → {result.out} ({lineage['seconds']:.0f} s)")
    if rows:
        out.print(f"rows: {rows}")
    if metrics.get("first_loss") is not None:
        out.print(f"loss: {metrics['first_loss']:.4f} first step, {metrics['last_loss']:.4f} last")
    if "eval" in metrics:
        out.print(f"held-out loss: {metrics['eval']['eval_loss']:.4f}")
    if lineage.get("resumed_from"):
        out.print(f"resumed from {lineage['resumed_from']}")
    out.print(f"generate with it: sao generate --model {result.out} ...")


def print_iterated(folder: Any, ledger: dict[str, Any]) -> None:
    """A loop's rounds: the key figures per round, why it ended and its best round."""
    from sao.report.html import fmt
    from sao.rounds.results import COLUMNS, round_metrics, rows

    shown = ("win_vs_0", "tie_vs_0", "win_vs_prev", "kl_0", "tokens", "distinct_2", "probe_lik")
    kinds = {name: kind for name, _, kind, _ in COLUMNS}
    table = Table(box=None)
    table.add_column("round")
    for name in shown:
        table.add_column(name, justify="right")
    for row in rows(round_metrics(folder, ledger)):
        table.add_row(str(row["round"]), *(fmt(row[name], kinds[name]) for name in shown))
    out.print(table)
    about = {name: text for name, _, _, text in COLUMNS if name in shown}
    out.print("; ".join(f"{k}: {v}" for k, v in about.items()), style="dim")
    if ledger.get("stopped"):
        out.print(f"stopped after round {ledger['stopped']['round']}: {ledger['stopped']['rule']}")
    out.print(f"best round by the frozen judge: {ledger['best_round']}")
    out.print(f"ledger: {folder}/iterate.json; curves: sao report {folder}")
