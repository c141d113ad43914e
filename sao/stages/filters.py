"""Run-wide prompt filters: exact, near-duplicate and ROUGE-L repeats of earlier kept prompts.

A candidate prompt is checked against every prompt kept before it in the run (earlier shards,
then earlier personas of its shard), before any response is sampled for it. The definitions are
shared with the report (`sao.text`), so what the filter removes is what the report would count.
"""

from __future__ import annotations

from collections.abc import Iterable

from sao.config import FilterConfig
from sao.text.duplicates import NearDuplicateIndex
from sao.text.repetition_index import RepetitionIndex
from sao.text.tokens import normalise

#: rejection reasons, in the order they are tested
REASONS = ("duplicate", "near_duplicate", "repetition")


class PromptFilter:
    """The prompts kept so far, and which of them a new candidate repeats."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.kept = 0
        self._exact: set[str] = set()
        near, rouge = cfg.near_duplicate, cfg.rouge_l
        self._near = NearDuplicateIndex(near) if near is not None else None
        self._rouge = RepetitionIndex(rouge) if rouge is not None else None

    @property
    def active(self) -> bool:
        """Whether any filter is switched on."""
        return self.cfg.exact or self._near is not None or self._rouge is not None

    def reason(self, text: str) -> str | None:
        """Why `text` repeats a kept prompt: "duplicate", "near_duplicate", "repetition" or None."""
        if self.cfg.exact and normalise(text) in self._exact:
            return "duplicate"
        if self._near is not None and self._near.find(text) is not None:
            return "near_duplicate"
        if self._rouge is not None and self._rouge.find(text) is not None:
            return "repetition"
        return None

    def add(self, text: str) -> None:
        """Remember a kept prompt."""
        self._exact.add(normalise(text))
        for index in (self._near, self._rouge):
            if index is not None:
                index.add(text)
        self.kept += 1

    def add_all(self, texts: Iterable[str]) -> None:
        """Remember several kept prompts, in order."""
        for text in texts:
            self.add(text)
