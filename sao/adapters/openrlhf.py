"""OpenRLHF: prompt messages, chosen/rejected assistant messages, and the judge's margin.

OpenRLHF's reward dataset renders `prompt` with the chat template and joins `prompt + chosen`
(lists of messages) when `--data.prompt_key prompt --data.apply_chat_template` are set; it
reads a column named `margin` (the reward-model trainer, with `--model.margin_loss_enable`).
"""

from __future__ import annotations

import datasets

from sao.adapters.options import ExportOptions, selected_pairs
from sao.adapters.trl import MESSAGES, pair_row

FEATURES = datasets.Features(
    {
        "prompt": MESSAGES,
        "chosen": MESSAGES,
        "rejected": MESSAGES,
        "margin": datasets.Value("float32"),
    }
)


def rows(record: dict, options: ExportOptions, context: dict) -> list[dict]:
    """One row per selected pair: TRL's DPO columns plus the margin."""
    return [{**pair_row(record, p), "margin": p["margin"]} for p in selected_pairs(record, options)]
