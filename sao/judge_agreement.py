"""`sao judge-agreement`: the run's judge beside another model judging the same answers.

Three figures reviewers ask of every self-judging method:

- agreement: over the answer pairs both judges measured and neither calls a tie
  (|P − ½| > tie_band), the share where both prefer the same answer; and how often both pick
  the same best answer (highest score) of a record;
- correlation: Pearson's r of the two judges' measured P cells (i < j);
- self-preference: the other model writes one answer to each prompt, and both judges compare
  it with the run's first answer in both orders. With g the run's answer, o the other model's,
  self-preference = P_run(g ≻ o) − P_other(g ≻ o): how much more the run's judge favours the
  run's answers over the other model's than the other model does. Positive means the two
  judges each lean toward their own model's answers (the one number two judges can give:
  quality cancels, mutual self-preference does not). It is the generator's own self-preference
  when the run's judge is its generator (self-judging, the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sao.config import RunConfig
from sao.engines.base import Engine, Sampling
from sao.seeds import request_seed, stage_seed
from sao.stages import judge, opens_reasoning, template_kwargs
from sao.stages.judge_diagnostics import agreement_counts
from sao.stages.verdicts import Verdicts
from sao.templates import Template
from sao.text.reasoning import answer_text


@dataclass(frozen=True)
class Rejudged:
    """The other judge's verdicts on the run's answers, and the self-preference duel."""

    verdicts: list[Verdicts]
    other_answers: list[str]
    duel_run: list[Verdicts]  # the run's judge on (run's answer, other's answer)
    duel_other: list[Verdicts]  # the other judge on the same two answers


def rejudge(cfg: RunConfig, records: list[dict], run_judge: Engine, other: Engine) -> Rejudged:
    """Judge the run's answers with `other`; then the duel of both models' answers."""
    template = Template(cfg.judge.template_name())
    items = [
        (rec["prompt"][-1]["content"], [r["text"] for r in rec["responses"]]) for rec in records
    ]
    markers = cfg.reasoning.markers
    verdicts = judge.judge(other, items, template, cfg.judge, markers)
    base = stage_seed(cfg.seed, 0, "judge-agreement")
    params = Sampling(
        n=1,
        temperature=cfg.responses.temperature,
        top_p=cfg.responses.top_p,
        max_tokens=cfg.responses.max_tokens,
        seed=request_seed(base, 0, 1),
    )
    asked = [rec["prompt"] for rec in records]
    kwargs = template_kwargs(cfg.responses)
    opened = opens_reasoning(other, asked, kwargs, markers)
    written = other.chat(asked, params, kwargs)
    other_answers = [answer_text(comps[0].text, markers, opened) for comps in written]
    duel = [
        (prompt, [texts[0], mine])
        for (prompt, texts), mine in zip(items, other_answers, strict=True)
    ]
    return Rejudged(
        verdicts=verdicts,
        other_answers=other_answers,
        duel_run=judge.judge(run_judge, duel, template, cfg.judge, markers),
        duel_other=judge.judge(other, duel, template, cfg.judge, markers),
    )


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r; None for fewer than two points or a constant side."""
    if len(xs) < 2 or np.std(xs) == 0 or np.std(ys) == 0:
        return None
    return float(np.corrcoef(xs, ys)[0, 1])


def compare(records: list[dict], rejudged: Rejudged, tie_band: float) -> dict[str, Any]:
    """Agreement, correlation and self-preference of the run's judge and the other one."""
    run_cells, other_cells = [], []
    best_same = compared = 0
    for rec, theirs in zip(records, rejudged.verdicts, strict=True):
        k = len(rec["responses"])
        for i in range(k):
            for j in range(i + 1, k):
                if rec["pref_estimated"][i][j] or theirs.estimated[i][j]:
                    continue  # only cells both judges measured
                p, q = rec["pref_matrix"][i][j], theirs.matrix[i][j]
                run_cells.append(p)
                other_cells.append(q)
        if not any(map(any, rec["pref_estimated"])) and not any(map(any, theirs.estimated)):
            compared += 1  # both judges measured every cell: their best answers are theirs
            best_same += int(np.argmax(rec["scores"])) == int(np.argmax(theirs.scores))
    decided, same = agreement_counts(zip(run_cells, other_cells, strict=True), tie_band)
    duels = [
        (mine.matrix[0][1], theirs.matrix[0][1])
        for mine, theirs in zip(rejudged.duel_run, rejudged.duel_other, strict=True)
        if not mine.estimated[0][1] and not theirs.estimated[0][1]  # both judges measured it
    ]
    run_mean = float(np.mean([a for a, _ in duels])) if duels else None
    other_mean = float(np.mean([b for _, b in duels])) if duels else None
    return {
        "records": len(records),
        "cells": len(run_cells),
        "decided_pairs": decided,
        "agreement": same / decided if decided else None,
        "best_answer_agreement": best_same / compared if compared else None,
        "best_answer_records": compared,
        "p_correlation": pearson(run_cells, other_cells),
        "self_preference": {
            "run_judge_prefers_run_answer": run_mean,
            "other_judge_prefers_run_answer": other_mean,
            "self_preference": (
                run_mean - other_mean if run_mean is not None and other_mean is not None else None
            ),
            "duels": len(duels),
        },
        "per_record": [
            {
                "record_id": rec["record_id"],
                "other_matrix": theirs.matrix,
                "other_estimated": theirs.estimated,
                "other_answer": answer,
                "duel_run": run_duel.matrix[0][1],
                "duel_other": other_duel.matrix[0][1],
                "duel_estimated": run_duel.estimated[0][1] or other_duel.estimated[0][1],
            }
            for rec, theirs, answer, run_duel, other_duel in zip(
                records,
                rejudged.verdicts,
                rejudged.other_answers,
                rejudged.duel_run,
                rejudged.duel_other,
                strict=True,
            )
        ],
    }
