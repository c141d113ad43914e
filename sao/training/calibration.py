"""S-SPPO-style calibration of soft SPPO's targets (sao's own formula, off by default).

SPPO regresses log π/π_ref on P(answer beats the policy) − ½. When two answers say the same
thing, a confident P between them teaches the policy a difference that is not there, and
rounds of it degenerate (S-SPPO's observation). sao shrinks each judged cell toward ½ as the
two answers' sentence embeddings (MiniLM, the report's) grow alike:

    w_ij = clip((cos(e_i, e_j) − low) / (high − low), 0, 1)
    P̃_ij = ½ + (P_ij − ½) · (1 − w_ij)

below `low` a cell is kept, above `high` it becomes a tie; P̃ stays antisymmetric
(P̃_ji = 1 − P̃_ij). The targets are P̃'s row means with the diagonal ½, as the uncalibrated
ones are P's.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sao.errors import SaoError
from sao.stages.verdicts import row_means


def calibrated_scores(matrix: list[list[float]], cosines: np.ndarray, low: float, high: float):
    """Row means of the calibrated matrix (the diagonal ½ included)."""
    p = np.asarray(matrix, dtype=np.float64)
    weight = np.clip((cosines - low) / (high - low), 0.0, 1.0)
    shrunk = 0.5 + (p - 0.5) * (1.0 - weight)
    np.fill_diagonal(shrunk, 0.5)
    return row_means(shrunk.tolist())


def calibrate_rows(rows: list[dict[str, Any]], records: list[dict], low: float, high: float):
    """Soft SPPO rows (prompt, chosen, rejected, p_win, p_lose) with calibrated p_win/p_lose,
    each row found in its record by its prompt and answer texts."""
    from sao.text.embed import embed

    texts = [[r["text"] for r in rec["responses"]] for rec in records]
    vectors = embed([t for answers in texts for t in answers])
    scores, start = [], 0
    for rec, answers in zip(records, texts, strict=True):
        block = vectors[start : start + len(answers)]
        start += len(answers)
        scores.append(calibrated_scores(rec["pref_matrix"], block @ block.T, low, high))
    by_prompt: dict[str, list[int]] = {}
    for index, rec in enumerate(records):
        by_prompt.setdefault(json.dumps(rec["prompt"]), []).append(index)
    out = []
    for row in rows:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        for index in by_prompt.get(json.dumps(row["prompt"]), []):
            answers = texts[index]
            if chosen in answers and rejected in answers:
                c, r = answers.index(chosen), answers.index(rejected)
                out.append(
                    {**row, "p_win": float(scores[index][c]), "p_lose": float(scores[index][r])}
                )
                break
        else:
            raise SaoError("calibration: a soft SPPO row matches no record of the run")
    return out
