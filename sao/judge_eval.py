"""`sao judge-eval`: how often each judge mode prefers the objectively better answer.

Every probe is judged twice per mode: presented as (better, worse) and as (worse, better).
A mode's verdict on a presentation is which answer P favours (a tie when P = ½ exactly).
Position bias is the share of probes whose verdict changes with the presentation: the
debiased modes show 0 by construction, the `single-order` baseline (one pass, label
log-probabilities, the order as presented, as in the SAO paper) its real rate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from sao.config import JudgeConfig
from sao.engines.base import Engine, Message, render_chat
from sao.errors import SaoError
from sao.stages import judge, judge_rubric, template_kwargs
from sao.templates import Template
from sao.text.reasoning import DEFAULT_MARKERS

MODES = ("single-order", "pairwise-logprob", "pairwise-text", "rubric")
FIELDS = ("prompt", "better", "worse")


@dataclass(frozen=True)
class Probe:
    """A prompt with an objectively better and worse answer."""

    id: str
    kind: str
    prompt: str
    better: str
    worse: str


def bundled_probes() -> Path:
    """The shipped probe set (wheel: sao/_data/probes; checkout: repo root)."""
    packaged = Path(__file__).resolve().parent / "_data" / "probes" / "judge_probes.jsonl"
    return (
        packaged
        if packaged.is_file()
        else Path(__file__).resolve().parent.parent / "probes/judge_probes.jsonl"
    )


def load_probes(path: str | Path) -> list[Probe]:
    """Probes from JSONL (fields prompt, better, worse; optional id, kind); errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise SaoError(f"probe file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise SaoError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise SaoError(f"cannot read {path}: {exc.strerror or exc}") from None
    probes = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise SaoError(f"{path} line {number}: not valid JSON") from None
        if not isinstance(row, dict):
            raise SaoError(f"{path} line {number}: expected a JSON object")
        for name in FIELDS:
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise SaoError(f"{path} line {number}: missing text field '{name}'")
        probes.append(
            Probe(
                id=str(row.get("id", number)),
                kind=str(row.get("kind", "")),
                prompt=row["prompt"],
                better=row["better"],
                worse=row["worse"],
            )
        )
    if not probes:
        raise SaoError(f"{path}: no probes")
    return probes


def verdict(p_better: float) -> str:
    """Which answer P favours."""
    return "better" if p_better > 0.5 else "worse" if p_better < 0.5 else "tie"


def prompt_tokens(
    engine: Engine, conversations: list[list[Message]], cfg: JudgeConfig | None = None
) -> int:
    """Tokens the engine reads for these conversations (0 when it exposes no tokenizer),
    rendered with the judge's chat-template variables."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None:
        return 0
    kwargs = template_kwargs(cfg) if cfg else None
    texts = [render_chat(tokenizer, c, kwargs) for c in conversations]
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def single_order(engine: Engine, probes: list[Probe], cfg: JudgeConfig) -> dict[str, Any]:
    """The one-pass baseline: P(better) is p(first wins) or p(second wins) as presented."""
    template = Template(cfg.template_name())
    labels = (cfg.labels[0], cfg.labels[1])
    convs = []
    for p in probes:
        convs.append(judge.request(p.prompt, p.better, p.worse, template, labels, cfg.system))
        convs.append(judge.request(p.prompt, p.worse, p.better, template, labels, cfg.system))
    calls = judge.logprob_calls(engine, convs, labels, cfg.min_label_mass, template_kwargs(cfg))
    p_first = [0.5 if c.p_first is None else c.p_first for c in calls]  # no verdict: no choice
    better_first = p_first[0::2]
    worse_first = [1.0 - p for p in p_first[1::2]]
    return {
        "p_better": (better_first, worse_first),
        "calls": len(calls),
        "generated_tokens": sum(c.tokens for c in calls),
        "prompt_tokens": prompt_tokens(engine, convs, cfg),
        "raw_flip_rate": None,
        "parse_failures": sum(c.p_first is None for c in calls),
    }


def debiased(
    engine: Engine, probes: list[Probe], cfg: JudgeConfig, markers: tuple[str, str]
) -> dict[str, Any]:
    """One of the library's modes on both presentations; P(better) read from the matrix."""
    template = Template(cfg.template_name())
    items_a = [(p.prompt, [p.better, p.worse]) for p in probes]
    items_b = [(p.prompt, [p.worse, p.better]) for p in probes]
    verdicts = judge.judge(engine, items_a + items_b, template, cfg, markers)
    n = len(probes)
    p_a = [v.matrix[0][1] for v in verdicts[:n]]
    p_b = [v.matrix[1][0] for v in verdicts[n:]]
    diags = [v.diagnostics for v in verdicts]
    decisive = sum(d.decisive_pairs for d in diags)
    if cfg.mode == "rubric":
        how = "digit" if judge_rubric.scoring(cfg, engine) == "logprob" else "json"
        convs = [
            judge_rubric.request(p, t, template, how, cfg.system)
            for p, texts in items_a
            for t in texts
        ]
    else:
        labels = (cfg.labels[0], cfg.labels[1])
        convs = [
            judge.request(p, texts[i], texts[j], template, labels, cfg.system)
            for p, texts in items_a
            for i, j in ((0, 1), (1, 0))
        ]
    scores = (
        [(v.judgments[0]["score"], v.judgments[1]["score"]) for v in verdicts[:n]]
        if cfg.mode == "rubric"
        else None
    )
    return {
        "p_better": (p_a, p_b),
        "calls": sum(d.calls for d in diags),
        "generated_tokens": sum(d.generated_tokens for d in diags),
        "prompt_tokens": 2 * prompt_tokens(engine, convs, cfg),
        "raw_flip_rate": sum(d.position_flips for d in diags) / decisive if decisive else None,
        "parse_failures": sum(d.parse_failures for d in diags),
        "rubric_scores": scores,
    }


def fit_rubric_scale(scores: list[tuple[float | None, float | None]]) -> float | None:
    """Scale s of P = σ((s_better − s_worse)/s) maximising the probes' likelihood."""
    gaps = [b - w for b, w in scores if b is not None and w is not None and b != w]
    if not gaps:
        return None

    def loss(log_a: float) -> float:
        a = math.exp(log_a)
        return float(np.logaddexp(0.0, -a * np.asarray(gaps)).sum()) + 0.01 * log_a**2

    best = minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded")
    return 1.0 / math.exp(best.x)


def evaluate(
    engine: Engine,
    probes: list[Probe],
    base: JudgeConfig,
    modes: list[str],
    markers: tuple[str, str] = DEFAULT_MARKERS,
) -> dict[str, Any]:
    """Accuracy, position bias, ties, parse failures and token cost per mode, plus agreement;
    text and JSON verdicts are read without reasoning between `markers`."""
    results: dict[str, Any] = {}
    verdicts: dict[str, list[str]] = {}
    for mode in modes:
        judged_as = "pairwise-logprob" if mode == "single-order" else mode
        # the config's own template applies to its own mode; other modes use their defaults
        template = base.template if judged_as == base.mode else None
        cfg = base.model_copy(update={"mode": judged_as, "template": template})
        raw = (
            single_order(engine, probes, cfg)
            if mode == "single-order"
            else debiased(engine, probes, cfg, markers)
        )
        p_a, p_b = raw["p_better"]
        first, second = [verdict(p) for p in p_a], [verdict(p) for p in p_b]
        n = len(probes)
        comparisons = 2 * n
        results[mode] = {
            "accuracy": sum(v == "better" for v in first + second) / comparisons,
            "tie_rate": sum(v == "tie" for v in first + second) / comparisons,
            "position_bias_rate": sum(a != b for a, b in zip(first, second, strict=True)) / n,
            "raw_flip_rate": raw["raw_flip_rate"],
            "parse_failures": raw["parse_failures"],
            "calls_per_comparison": raw["calls"] / comparisons,
            "generated_tokens_per_comparison": raw["generated_tokens"] / comparisons,
            "prompt_tokens_per_comparison": raw["prompt_tokens"] / comparisons,
            "by_kind": by_kind(probes, first, second),
            "p_better": [[a, b] for a, b in zip(p_a, p_b, strict=True)],
        }
        if raw.get("rubric_scores"):
            results[mode]["rubric_scale_fit"] = fit_rubric_scale(raw["rubric_scores"])
        verdicts[mode] = first
    agreement = {
        a: {
            b: sum(x == y for x, y in zip(verdicts[a], verdicts[b], strict=True)) / len(probes)
            for b in modes
        }
        for a in modes
    }
    return {"probes": len(probes), "modes": results, "agreement": agreement}


def by_kind(probes: list[Probe], first: list[str], second: list[str]) -> dict[str, float]:
    """Accuracy per probe kind (both presentations)."""
    totals: dict[str, list[int]] = {}
    for probe, a, b in zip(probes, first, second, strict=True):
        hit = totals.setdefault(probe.kind or "-", [0, 0])
        hit[0] += (a == "better") + (b == "better")
        hit[1] += 2
    return {kind: right / count for kind, (right, count) in sorted(totals.items())}
