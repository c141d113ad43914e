"""One round's evaluation: π_r answers the anchor prompts and every figure of the round is taken.

Order of work (each engine or scorer released before the next loads): π_r's engine samples the
anchors (written at once, so a kill after this point does not sample again) and judges the
probes, as the self-judge it would be; plain transformers scores π_r's samples under π_r, π_0 and
π_(r−1) and the probes under π_r; the frozen judge duels π_r's answers against π_0's and
π_(r−1)'s; the round's data is summarised and its pairs judged by the judge that did not make
them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from sao import failpoints
from sao.config import RunConfig
from sao.engine_setup import load_engine
from sao.engines.base import Sampling
from sao.engines.guard import EngineSlot
from sao.engines.hardware import resolve_dtype
from sao.errors import SaoError
from sao.judge_eval import bundled_probes, evaluate, load_probes
from sao.models import ResolvedModel
from sao.provenance import weights_digest
from sao.rounds import measures
from sao.rounds.config import EvalSettings
from sao.rounds.likelihood import scorer
from sao.seeds import request_seed, stage_seed
from sao.stages import judge, opens_reasoning, template_kwargs
from sao.store import read_manifest, read_records, write_checked
from sao.templates import Template
from sao.text.reasoning import answer_text


@dataclass(frozen=True)
class Policy:
    """A round's model: its number, how engines load it, and its weights' digest."""

    round: int
    model: ResolvedModel
    digest: str


@dataclass(frozen=True)
class Evaluation:
    """What a round's evaluation is given."""

    run: RunConfig  # the round's run config (engine, judge settings, sampling of the answers)
    settings: EvalSettings
    anchors: list[dict[str, Any]]
    policy: Policy
    initial: Policy
    previous: Policy | None  # None in round 0
    frozen_judge: ResolvedModel
    data_dir: Path | None  # the round's data run; None in round 0
    data_judge: ResolvedModel | None  # the model that judged that run
    folder: Path  # round-r/
    console: Console


@contextmanager
def loaded(
    cfg: RunConfig, engine_cfg: Any, model: ResolvedModel, console: Console, judges: bool
) -> Iterator[Any]:
    """An engine for the `with` block (failures as one line), closed and collected after it."""
    slot = EngineSlot(lambda: load_engine(cfg, engine_cfg, model, console, judges))
    try:
        yield slot.get()
    finally:
        slot.close()


def answers_path(folder: Path) -> Path:
    return folder / "answers.json"


def read_answers(folder: Path) -> dict[str, Any]:
    """A round's written answers (its ledger entry holds their digest)."""
    path = answers_path(folder)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SaoError(
            f"{path}: missing or unreadable; its round must be evaluated again"
        ) from None


def run(ev: Evaluation) -> dict[str, Any]:
    """Every figure of round `ev.policy.round`; written to round-r/eval.json by the caller."""
    sampled = sample(ev)
    failpoints.reach("sampled", ev.policy.round)
    answers = sampled["answers"]
    texts = [t for a in answers for t in a["texts"]]
    metrics: dict[str, Any] = {
        "round": ev.policy.round,
        "policy_digest": ev.policy.digest,
        "degeneration": measures.degeneration(
            texts,
            [n for a in answers for n in a["tokens"]],
            [t for a in answers for t in a["truncated"]],
        ),
        "judge_probe_accuracy": sampled["judge_probe_accuracy"],
    }
    metrics.update(likelihoods(ev, answers))
    if ev.previous is not None:
        metrics.update(duels(ev, answers))
        metrics["data"] = round_data(ev)
    return metrics


def sample(ev: Evaluation) -> dict[str, Any]:
    """π_r's answers to the anchors, and its accuracy as a judge on the probes. The answers are
    written as soon as they exist, so a kill after that never samples them again."""
    path = answers_path(ev.folder)
    kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if kept.get("policy_digest") != ev.policy.digest:
        kept = {}
    cfg, settings = ev.run, ev.settings
    wants_probes = settings.judge_probes and "judge_probe_accuracy" not in kept
    if kept and not wants_probes:
        return kept
    with loaded(cfg, cfg.engine, ev.policy.model, ev.console, settings.judge_probes) as engine:
        markers = cfg.reasoning.markers
        if not kept:
            kept = {"policy_digest": ev.policy.digest, "answers": answer(ev, engine)}
            write_checked(path, json.dumps(kept, ensure_ascii=False).encode())
        if wants_probes:
            with ev.console.status(f"round {ev.policy.round}: the policy judges the probes"):
                result = evaluate(engine, probes(settings), cfg.judge, [cfg.judge.mode], markers)
            kept["judge_probe_accuracy"] = result["modes"][cfg.judge.mode]["accuracy"]
            write_checked(path, json.dumps(kept, ensure_ascii=False).encode())
    return kept


def answer(ev: Evaluation, engine: Any) -> list[dict[str, Any]]:
    """`eval.samples` answers of the policy to each anchor, at temperature 1 and top-p 1."""
    cfg, settings = ev.run, ev.settings
    asked = [a["prompt"] for a in ev.anchors]
    kwargs = template_kwargs(cfg.responses)
    markers = cfg.reasoning.markers
    opened = opens_reasoning(engine, asked, kwargs, markers)
    base = stage_seed(cfg.seed, ev.policy.round, "iterate-answers")
    params = Sampling(
        n=settings.samples,
        temperature=1.0,
        top_p=1.0,
        max_tokens=settings.max_tokens or cfg.responses.max_tokens,
        seed=request_seed(base, 0, settings.samples),
    )
    with ev.console.status(f"round {ev.policy.round}: sampling {len(asked)} anchor prompts"):
        written = engine.chat(asked, params, kwargs)
    answers = []
    for comps in written:
        texts = [answer_text(c.text, markers, opened) for c in comps]
        answers.append(
            {
                "texts": texts,
                "tokens": [c.num_tokens for c in comps],
                "truncated": [c.finish_reason == "length" for c in comps],
                # what was sampled, reasoning included, where it differs: what KL scores
                "sampled": [
                    c.text if c.text != t else None for c, t in zip(comps, texts, strict=True)
                ],
            }
        )
    return answers


def probes(settings: EvalSettings) -> list:
    return load_probes(bundled_probes() if settings.probes == "bundled" else settings.probes)


def likelihoods(ev: Evaluation, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """KL(π_r ‖ π_0), KL(π_r ‖ π_(r−1)) from π_r's samples, and the probe check under π_r."""
    kwargs = template_kwargs(ev.run.responses)
    items = [
        (anchor["prompt"], raw or text, not cut)
        for anchor, a in zip(ev.anchors, answers, strict=True)
        for text, raw, cut in zip(
            a["texts"], a.get("sampled") or [None] * len(a["texts"]), a["truncated"], strict=True
        )
    ]
    found = probes(ev.settings)
    probe_items = [
        ([{"role": "user", "content": p.prompt}], text, False)
        for p in found
        for text in (p.better, p.worse)
    ]
    dtype = resolve_dtype(ev.run.engine.dtype)
    out: dict[str, Any] = {}
    policy = ev.policy.model
    with (
        ev.console.status(f"round {ev.policy.round}: scoring under π_{ev.policy.round}"),
        scorer(policy.path, policy.revision, dtype) as model,
    ):
        own = [s.logprob for s in model.score(items, kwargs)]
        scored = model.score(probe_items)
    out["probe_likelihood"] = measures.probe_rate(
        [s.mean for s in scored[0::2]], [s.mean for s in scored[1::2]]
    )
    if ev.previous is None:
        return out
    others = [("kl_initial", ev.initial)]
    if ev.previous.digest != ev.initial.digest:
        others.append(("kl_previous", ev.previous))
    for key, other in others:
        with (
            ev.console.status(f"round {ev.policy.round}: scoring under π_{other.round}"),
            scorer(other.model.path, other.model.revision, dtype) as model,
        ):
            theirs = [s.logprob for s in model.score(items, kwargs)]
        out[key] = measures.kl_estimate(own, theirs)
    out.setdefault("kl_previous", out["kl_initial"])
    return out


def duels(ev: Evaluation, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The frozen judge on π_r's answers against π_0's and π_(r−1)'s, both orders (the judge
    mode's own debiasing), and on the round's pairs when another judge made them."""
    cfg, band = ev.run, ev.run.judge.tie_band
    against = {"vs_initial": read_answers(ev.folder.parent / "round-0")["answers"]}
    if ev.previous is not None and ev.previous.round > 0:
        previous = ev.folder.parent / f"round-{ev.previous.round}"
        against["vs_previous"] = read_answers(previous)["answers"]
    template = Template(cfg.judge.template_name())
    markers = cfg.reasoning.markers
    out: dict[str, Any] = {}
    judge_engine = cfg.judge_engine() if cfg.judge.model is not None else cfg.engine
    with loaded(cfg, judge_engine, ev.frozen_judge, ev.console, True) as engine:
        for key, theirs in against.items():
            items, lengths = [], []
            for anchor, mine, other in zip(ev.anchors, answers, theirs, strict=True):
                for s, text in enumerate(mine["texts"]):
                    items.append((anchor["prompt"][-1]["content"], [text, other["texts"][s]]))
                    lengths.append((mine["tokens"][s], other["tokens"][s]))
            with ev.console.status(f"round {ev.policy.round}: the frozen judge, {key}"):
                verdicts = judge.judge(engine, items, template, cfg.judge, markers)
            kept = [
                (v.matrix[0][1], n)
                for v, n in zip(verdicts, lengths, strict=True)
                if not v.estimated[0][1]
            ]
            out[key] = {
                **measures.duel_outcomes(
                    [p for p, _ in kept], [n for _, n in kept], band, ev.settings.length_match
                ),
                "unjudged": len(items) - len(kept),
                "p": [p for p, _ in kept],  # P(π_r's answer ≻ the other), per judged duel
                "tokens": [n for _, n in kept],
            }
        self_judged = ev.data_judge is not None and same_weights(ev.data_judge, ev.frozen_judge)
        if not self_judged:
            out["judge_agreement"] = rejudged_pairs(ev, None, "frozen judge", engine)
    if self_judged:  # the frozen judge made the pairs: π_(r−1) judges them again, loaded alone
        out["judge_agreement"] = rejudged_pairs(ev, ev.previous.model, "self-judge")
    out.setdefault("vs_previous", out["vs_initial"])
    return out


def same_weights(a: ResolvedModel, b: ResolvedModel) -> bool:
    """The same weights, however each was named (the embedded alias, its folder)."""
    return weights_digest(a) == weights_digest(b)


def round_pairs(ev: Evaluation) -> tuple[list[dict], list[tuple[str, list[str]]], list[float]]:
    """The round's records, its selected pairs as judge items (chosen, rejected), and the run
    judge's P(chosen ≻ rejected) of each."""
    records = read_records(ev.data_dir).to_pylist()
    items, run_p = [], []
    for rec in records:
        texts = [r["text"] for r in rec["responses"]]
        for pair in rec["pairs"]:
            c, r = pair["chosen"], pair["rejected"]
            items.append((rec["prompt"][-1]["content"], [texts[c], texts[r]]))
            run_p.append(rec["pref_matrix"][c][r])
    return records, items, run_p


def rejudged_pairs(
    ev: Evaluation, other: ResolvedModel | None, who: str, engine: Any = None
) -> dict[str, Any]:
    """The round's pairs judged again by the judge that did not make them: the frozen judge
    (an engine already loaded) or π_(r−1) as self-judge. Where both are the same weights (round
    1 judged by π_0), they agree by definition and nothing is judged."""
    cfg = ev.run
    if other is not None and same_weights(other, ev.data_judge):
        # the self-judge is the judge that made the pairs: nothing to compare
        return {"by": who, "same_model": True, "agreement": None}
    _, items, run_p = round_pairs(ev)
    if not items:
        return {"by": who, "same_model": False, "pairs": 0, "decided": 0, "agreement": None}
    template = Template(cfg.judge.template_name())
    with contextlib.ExitStack() as stack:
        if engine is None:
            engine = stack.enter_context(loaded(cfg, cfg.engine, other, ev.console, True))
        with ev.console.status(f"round {ev.policy.round}: the {who} judges the round's pairs"):
            verdicts = judge.judge(engine, items, template, cfg.judge, cfg.reasoning.markers)
    theirs = [v.matrix[0][1] for v in verdicts]
    return {
        "by": who,
        "same_model": False,
        **measures.agreement(run_p, theirs, cfg.judge.tie_band),
        "run_p": run_p,  # the run's judge: P(chosen ≻ rejected), per pair
        "other_p": theirs,  # the other judge's, for the same pairs
    }


def round_data(ev: Evaluation) -> dict[str, Any]:
    """The round's data: margins, ties, and how alike its chosen and rejected answers are."""
    from sao.text.embed import embed

    _, items, _ = round_pairs(ev)
    totals = read_manifest(ev.data_dir)["totals"]  # the run's own judge diagnostics
    stats = {
        "records": totals["records"],
        "pairs": totals["pairs"],
        "mean_margin": totals["judge"]["pair_margin_mean"],
        "tie_rate": totals["judge"]["tie_rate"],
    }
    if items:
        chosen = embed([texts[0] for _, texts in items])
        rejected = embed([texts[1] for _, texts in items])
        stats["chosen_rejected_cosine"] = float(np.mean(np.sum(chosen * rejected, axis=1)))
    else:
        stats["chosen_rejected_cosine"] = None
    return stats
