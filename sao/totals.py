"""Run totals: the committed shards' statistics summed, rates taken from the sums."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sao.stages.judge_diagnostics import run_summary


def flag_kind(flag: str) -> str:
    """A flag without its count suffix ("judge_low_label_mass:3" → "judge_low_label_mass")."""
    name, _, value = flag.partition(":")
    return name if value.isdigit() else flag


def totals(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Run totals summed over every committed shard's stats."""
    counted = ("tokens", "wall_s", "flags", "prompt_rejections", "judge")
    out: dict[str, Any] = {key: Counter() for key in counted}
    for key in ("personas", "records", "pairs", "prompts_rejected", "judge_calls"):
        out[key] = sum(s["stats"][key] for s in shards)
    for s in shards:
        for key in counted:
            out[key].update(s["stats"][key])
    out = {key: dict(value) if isinstance(value, Counter) else value for key, value in out.items()}
    out["wall_s"] = {k: round(v, 3) for k, v in out["wall_s"].items()}
    out["judge"] = run_summary(out["judge"])
    return out
