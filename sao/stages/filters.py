"""Run-wide prompt filters: exact, near-duplicate and ROUGE-L repeats of earlier kept prompts.

A candidate prompt is checked against every prompt kept before it in the run (earlier shards,
then earlier personas of its shard), before any response is sampled for it. The definitions are
the report's (`sao.report.lexical`), so what the filter removes is what the report would count.
"""

from __future__ import annotations

from collections.abc import Iterable

from datasketch import MinHash, MinHashLSH

from sao.config import FilterConfig
from sao.report.lexical import RepetitionIndex, normalise, shingles

NUM_PERM = 128
#: rejection reasons, in the order they are tested
REASONS = ("duplicate", "near_duplicate", "repetition")


class PromptFilter:
    """The prompts kept so far, and which of them a new candidate repeats."""

    def __init__(self, cfg: FilterConfig) -> None:
        self.cfg = cfg
        self.kept = 0
        self._exact: set[str] = set()
        self._shingles: list[set[str]] = []
        self._lsh = (
            MinHashLSH(threshold=cfg.near_duplicate - 0.1, num_perm=NUM_PERM)
            if cfg.near_duplicate is not None
            else None
        )
        self._rouge = RepetitionIndex(cfg.rouge_l) if cfg.rouge_l is not None else None

    @property
    def active(self) -> bool:
        """Whether any filter is switched on."""
        return self.cfg.exact or self._lsh is not None or self._rouge is not None

    def reason(self, text: str) -> str | None:
        """Why `text` repeats a kept prompt: "duplicate", "near_duplicate", "repetition" or None."""
        if self.cfg.exact and normalise(text) in self._exact:
            return "duplicate"
        if self._lsh is not None and self._near(text):
            return "near_duplicate"
        if self._rouge is not None and self._rouge.find(text) is not None:
            return "repetition"
        return None

    def add(self, text: str) -> None:
        """Remember a kept prompt."""
        self._exact.add(normalise(text))
        if self._lsh is not None:
            grams = shingles(text)
            self._lsh.insert(self.kept, _signature(grams))
            self._shingles.append(grams)
        if self._rouge is not None:
            self._rouge.add(text)
        self.kept += 1

    def add_all(self, texts: Iterable[str]) -> None:
        """Remember several kept prompts, in order."""
        for text in texts:
            self.add(text)

    def _near(self, text: str) -> bool:
        grams = shingles(text)
        for key in self._lsh.query(_signature(grams)):
            other = self._shingles[key]
            if len(grams & other) / len(grams | other) >= self.cfg.near_duplicate:
                return True
        return False


def _signature(grams: set[str]) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=1)
    signature.update_batch([g.encode() for g in grams])
    return signature
