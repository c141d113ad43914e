"""The live display of `sao generate`: one bar per stage with records done, tokens/s and ETA."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

STAGES = ("prompts", "responses", "judge")


class StageProgress:
    """A rich progress display: one bar per stage with records done, tokens/s and ETA."""

    def __init__(self, console: Console, total: int, done: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>14}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks = {
            s: self.progress.add_task(s, total=total, completed=done, rate="") for s in STAGES
        }
        self.tokens = Counter()
        self.seconds = Counter()
        self.pending: list[tuple[str, int, int, float]] = []  # this shard's, until kept

    def __enter__(self) -> StageProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, stage: str, records: int, tokens: int, seconds: float) -> None:
        """Advance a stage by one shard's records and refresh its throughput."""
        self.pending.append((stage, records, tokens, seconds))
        self._advance(stage, records, tokens, seconds)

    def keep(self) -> None:
        """The shard was committed: its progress stays."""
        self.pending.clear()

    def undo(self) -> None:
        """The shard failed and will be rerun: take its progress back."""
        for stage, records, tokens, seconds in self.pending:
            self._advance(stage, -records, -tokens, -seconds)
        self.pending.clear()

    def _advance(self, stage: str, records: int, tokens: int, seconds: float) -> None:
        self.tokens[stage] += tokens
        self.seconds[stage] += seconds
        rate = self.tokens[stage] / max(self.seconds[stage], 1e-9)
        self.progress.update(self.tasks[stage], advance=records, rate=f"{rate:,.0f} tok/s")
