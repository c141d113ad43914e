"""TRL's preference formats (conversational): DPO / CPO-SimPO / ORPO pairs and KTO singles."""

from __future__ import annotations

import datasets

from sao.adapters.options import ExportOptions, assistant, selected_pairs

MESSAGES = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]
DPO_FEATURES = datasets.Features({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES})
KTO_FEATURES = datasets.Features(
    {"prompt": MESSAGES, "completion": MESSAGES, "label": datasets.Value("bool")}
)


def pair_row(record: dict, pair: dict) -> dict:
    """Prompt messages, and the pair's chosen and rejected as one assistant message each."""
    responses = record["responses"]
    return {
        "prompt": record["prompt"],
        "chosen": assistant(responses[pair["chosen"]]["text"]),
        "rejected": assistant(responses[pair["rejected"]]["text"]),
    }


def dpo_rows(record: dict, options: ExportOptions, context: dict) -> list[dict]:
    """One row per selected pair."""
    return [pair_row(record, p) for p in selected_pairs(record, options)]


def kto_threshold(options: ExportOptions, context: dict) -> float:
    """Half the margin: how far from ½ a score must be to count as (un)desirable."""
    margin = options.min_margin
    if margin is None:
        margin = context["config"]["pairs"]["min_margin"]
    return margin / 2


def kto_balance(labels: list[bool]) -> tuple[int, int, float]:
    """Desirable and undesirable answers, and the desirable weight that balances the two
    classes (1.0 when either is missing)."""
    good = sum(labels)
    bad = len(labels) - good
    return good, bad, round(bad / good, 2) if good and bad else 1.0


def kto_rows(record: dict, options: ExportOptions, context: dict) -> list[dict]:
    """One row per answer: desirable when its score is `threshold` above ½, undesirable below.

    A score is the answer's mean win probability against the prompt's answers (diagonal ½),
    so the prompt's answers average exactly ½; answers within the threshold are left out.
    """
    band = kto_threshold(options, context)
    rows = []
    for response, score in zip(record["responses"], record["scores"], strict=True):
        if abs(score - 0.5) < band or score == 0.5:
            continue
        rows.append(
            {
                "prompt": record["prompt"],
                "completion": assistant(response["text"]),
                "label": score > 0.5,
            }
        )
    return rows
