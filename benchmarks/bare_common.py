"""What the bare baselines share: the request file, a clock, the stage loop and the result line.

A bare baseline does the work `sao generate` did, written straight against one engine's own
API. It reads the requests sao sent from the JSON file `overhead.py` writes (each stage's
conversations, sampling parameters and per-request seeds; the judge's conversations and
labels) and imports nothing of sao's: this module is standard library only, and each
`bare_<engine>.py` adds just its engine's library. Start-up (imports, engine start, model
load) and stages are timed apart, and one JSON line is printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Stage = dict[str, Any]


def load_requests(path: str) -> dict[str, Any]:
    """The request file: {"engine", "model", "settings", "stages": [...]}."""
    return json.loads(Path(path).read_text())


def label_ids(tokenizer: Any, labels: list[str]) -> list[int]:
    """Token id of each single-token judge label (any Hugging Face-style tokenizer)."""
    ids = [tokenizer.encode(label, add_special_tokens=False) for label in labels]
    if any(len(i) != 1 for i in ids):
        raise SystemExit(f"judge labels {labels} are not one token each for this tokenizer")
    return [i[0] for i in ids]


class Clock:
    """Back-to-back laps: start-up phases, then stages; made after the request file is read."""

    def __init__(self) -> None:
        self.mark = time.perf_counter()
        self.startup: dict[str, float] = {}
        self.stages: dict[str, float] = {}
        self.pending_startup = 0.0  # engine start found inside the current stage's lap

    def _lap(self) -> float:
        now = time.perf_counter()
        seconds, self.mark = now - self.mark, now
        return seconds

    def phase(self, name: str) -> None:
        """The lap since the last mark was start-up phase `name`."""
        self.startup[name] = self.startup.get(name, 0.0) + self._lap()

    def engine_start_within(self, seconds: float) -> None:
        """Part of the running stage was an engine start (Ray Data starts replicas per dataset)."""
        self.pending_startup += seconds

    def stage(self, name: str) -> None:
        """The lap since the last mark was stage `name` (less any engine start within it)."""
        lap, inside = self._lap(), self.pending_startup
        self.pending_startup = 0.0
        self.stages[name] = self.stages.get(name, 0.0) + lap - inside
        self.startup["engine_start"] = self.startup.get("engine_start", 0.0) + inside


def run_stages(
    request: dict[str, Any],
    clock: Clock,
    chat: Callable[[Stage], int],
    judge: Callable[[Stage], int],
    **extra: Any,
) -> None:
    """Run every stage in order (`chat` returns generated tokens, `judge` the calls answered,
    one token each) and print the result line."""
    tokens = judge_calls = 0
    for stage in request["stages"]:
        if "labels" in stage:
            answered = judge(stage)
            judge_calls += answered
            tokens += answered
        else:
            tokens += chat(stage)
        clock.stage(stage["name"])
    startup = {k: round(v, 3) for k, v in clock.startup.items()}
    stages = {k: round(v, 3) for k, v in clock.stages.items()}
    result = {
        "engine": request["engine"],
        "startup_s": round(sum(clock.startup.values()), 3),
        "startup_phases_s": startup,
        "stage_s": round(sum(clock.stages.values()), 3),
        "stages_s": stages,
        "tokens": tokens,
        "judge_calls": judge_calls,
        **extra,
    }
    print(json.dumps(result), flush=True)
