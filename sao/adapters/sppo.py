"""SPPO: one row per prompt, full conversations, and the win probabilities from P.

`chosen_probs` = P[chosen][rejected]; `chosen_probs_win` / `chosen_probs_lose` = the chosen and
rejected answers' scores, i.e. their rows' means of P with the diagonal ½ included (DESIGN §6),
the estimate of P(answer beats the policy) that SPPO's squared loss regresses on. The trainer
takes the prompt as `chosen[:-1]`, so there is no prompt column.
"""

from __future__ import annotations

import datasets

from sao.adapters.options import ExportOptions, assistant, selected_pairs
from sao.adapters.trl import MESSAGES

FEATURES = datasets.Features(
    {
        "chosen": MESSAGES,
        "rejected": MESSAGES,
        "chosen_probs": datasets.Value("float64"),
        "chosen_probs_win": datasets.Value("float64"),
        "chosen_probs_lose": datasets.Value("float64"),
    }
)


def rows(record: dict, options: ExportOptions, context: dict) -> list[dict]:
    """The record's widest selected pair, as SPPO's trainer reads it."""
    pairs = selected_pairs(record, options)[:1]
    texts = [r["text"] for r in record["responses"]]
    p, scores = record["pref_matrix"], record["scores"]
    out = []
    for pair in pairs:
        c, r = pair["chosen"], pair["rejected"]
        out.append(
            {
                "chosen": record["prompt"] + assistant(texts[c]),
                "rejected": record["prompt"] + assistant(texts[r]),
                "chosen_probs": p[c][r],
                "chosen_probs_win": scores[c],
                "chosen_probs_lose": scores[r],
            }
        )
    return out
