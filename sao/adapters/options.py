"""What every projection shares: export options, the train/test split, and which pairs go out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ExportOptions:
    """Options of `sao export`, the same for every format."""

    split_ratio: float = 0.05  # share of prompts (records) held out for evaluation
    seed: int = 0  # decides which prompts are held out
    min_margin: float | None = None  # drop pairs below this margin (None: keep the run's pairs)
    max_pairs_per_prompt: int | None = None  # keep at most this many pairs per record, widest


def held_out(record_id: str, options: ExportOptions) -> bool:
    """True when this record belongs to the evaluation split.

    The split is by prompt, never by pair, so no prompt is in both splits; a record's side
    depends only on its id and the seed, so it stays put when a run is extended.
    """
    digest = hashlib.sha256(f"{options.seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < options.split_ratio


def selected_pairs(record: dict, options: ExportOptions) -> list[dict]:
    """The record's stored pairs that pass `min_margin`, widest first, capped per prompt."""
    pairs = [
        p
        for p in record["pairs"]
        if options.min_margin is None or p["margin"] >= options.min_margin
    ]
    pairs.sort(key=lambda p: -p["margin"])
    if options.max_pairs_per_prompt is not None:
        pairs = pairs[: options.max_pairs_per_prompt]
    return pairs


def assistant(text: str) -> list[dict[str, str]]:
    """One assistant turn as a message list."""
    return [{"role": "assistant", "content": text}]
