"""A finished (or stopped) loop read back: each round's figures, flat, for the CLI and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sao.errors import SaoError
from sao.report.html import lookup


def duel_columns(suffix: str, key: str, other: str) -> tuple[tuple[str, str, str, str], ...]:
    """Wins, ties, losses and mean P against `other`, over every duel and length-matched ones."""
    out = [(f"duels_{suffix}", f"{key}.duels", "int", f"frozen judge: duels of π_r with {other}")]
    for part, where, what in (("", key, ""), ("_lm", f"{key}.length_matched", ", length-matched")):
        if part:
            out.append((f"duels_{suffix}{part}", f"{where}.duels", "int", f"… of them{what}"))
        for outcome, plural in (("win", "wins"), ("tie", "ties"), ("loss", "losses")):
            name, rate = f"{outcome}_{suffix}{part}", f"{where}.{outcome}_rate"
            out.append((name, rate, "pct", f"… {plural}{what}"))
        out.append((f"p_{suffix}{part}", f"{where}.mean_p", "f3", f"… mean P(π_r ≻ it){what}"))
    out.append((f"unjudged_{suffix}", f"{key}.unjudged", "int", "… duels the judge did not decide"))
    return tuple(out)


# (column, dotted key in a round's eval.json, how it is shown, what it is)
COLUMNS = (
    *duel_columns("vs_0", "vs_initial", "π_0"),
    *duel_columns("vs_prev", "vs_previous", "π_(r−1)"),
    ("kl_0", "kl_initial.kl", "f3", "KL(π_r ‖ π_0), nats per answer"),
    ("kl_0_se", "kl_initial.stderr", "f3", "… its standard error"),
    ("kl_prev", "kl_previous.kl", "f3", "KL(π_r ‖ π_(r−1))"),
    ("kl_prev_se", "kl_previous.stderr", "f3", "… its standard error"),
    ("tokens", "degeneration.mean_tokens", "f1", "mean answer tokens"),
    ("truncated", "degeneration.truncation_rate", "pct", "answers cut at max_tokens"),
    ("distinct_1", "degeneration.distinct_1", "f3", "distinct-1"),
    ("distinct_2", "degeneration.distinct_2", "f3", "distinct-2"),
    ("self_bleu", "degeneration.self_bleu", "f3", "self-BLEU"),
    ("rep_3gram", "degeneration.repeated_3gram_rate", "pct", "repeated 3-grams within answers"),
    ("records", "data.records", "int", "round data: records"),
    ("pairs", "data.pairs", "int", "round data: pairs"),
    ("margin", "data.mean_margin", "f3", "round data: mean pair margin"),
    ("data_ties", "data.tie_rate", "pct", "round data: judge tie rate"),
    ("cr_cosine", "data.chosen_rejected_cosine", "f3", "chosen/rejected embedding cosine"),
    ("judge_agree", "judge_agreement.agreement", "pct", "self-judge agrees with frozen judge"),
    ("agree_pairs", "judge_agreement.pairs", "int", "… of the round's pairs, judged again"),
    ("agree_decided", "judge_agreement.decided", "int", "… pairs both judges decided"),
    ("probe_judge", "judge_probe_accuracy", "pct", "π_r as judge: probe accuracy"),
    (
        "probe_lik",
        "probe_likelihood.better_more_likely",
        "pct",
        "π_r: better probe answer more likely",
    ),
    ("probe_gap", "probe_likelihood.mean_gap", "f3", "… mean log-likelihood gap per token"),
)


def round_metrics(out: Path, ledger: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """eval.json of every evaluated round up to the configured last one (or the round a stop
    rule ended the loop at: later rounds, evaluated before the rules changed, are not its), by
    round."""
    last = ledger["config"]["iterate"]["rounds"]
    if ledger.get("stopped"):
        last = min(last, ledger["stopped"]["round"])
    metrics = {}
    for entry in ledger["stages"]:
        if entry["stage"] != "evaluate" or entry["round"] > last:
            continue
        path = Path(out) / entry["output"]
        try:
            metrics[entry["round"]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SaoError(f"{path}: missing or unreadable; the ledger lists it") from None
    return metrics


def rows(metrics: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per round: `round` and every column."""
    return [
        {"round": r, **{name: lookup(m, key) for name, key, _, _ in COLUMNS}}
        for r, m in sorted(metrics.items())
    ]


def stage_seconds(ledger: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Seconds per stage, by round."""
    by_round: dict[int, dict[str, float]] = {}
    for e in ledger["stages"]:
        by_round.setdefault(e["round"], {})[e["stage"]] = e["seconds"]
    return by_round
