"""Exact and near-duplicate texts, found without comparing all pairs.

- exact duplicate: equal to an earlier text after lower-casing and collapsing whitespace;
- near-duplicate: a word-3-gram set with Jaccard ≥ 0.9 with an earlier text (MinHash LSH
  proposes candidates, the exact Jaccard decides). `NearDuplicateIndex` is the same rule for
  texts that arrive one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from datasketch import MinHash, MinHashLSH

from sao.text.ngrams import shingles
from sao.text.tokens import normalise

NEAR_DUP_JACCARD = 0.9


def exact_duplicates(texts: Sequence[str]) -> list[int]:
    """Indices of texts that repeat an earlier text exactly (after `normalise`)."""
    seen: set[str] = set()
    repeats = []
    for index, text in enumerate(texts):
        key = normalise(text)
        if key in seen:
            repeats.append(index)
        seen.add(key)
    return repeats


class NearDuplicateIndex:
    """Texts added one by one; `find` names an added text whose shingle Jaccard reaches the
    threshold. The LSH bands are tuned 0.1 below it, so pairs just above it are rarely missed
    (LSH recall is ~½ at its own threshold); the exact Jaccard then decides."""

    def __init__(self, threshold: float = NEAR_DUP_JACCARD, num_perm: int = 128) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=max(0.4, threshold - 0.1), num_perm=num_perm)
        self._sets: list[set[str]] = []

    def find(self, text: str) -> int | None:
        """Position (order of add) of the first added near-duplicate of `text`, or None."""
        grams = shingles(text)
        for key in sorted(self._lsh.query(self._signature(grams))):
            other = self._sets[key]
            if len(grams & other) / len(grams | other) >= self.threshold:
                return key
        return None

    def add(self, text: str) -> int:
        """Remember a text; returns its position."""
        grams = shingles(text)
        self._lsh.insert(len(self._sets), self._signature(grams))
        self._sets.append(grams)
        return len(self._sets) - 1

    def _signature(self, grams: set[str]) -> MinHash:
        signature = MinHash(num_perm=self.num_perm, seed=1)
        signature.update_batch([g.encode() for g in grams])
        return signature


def near_duplicates(
    texts: Sequence[str], threshold: float = NEAR_DUP_JACCARD, num_perm: int = 128
) -> list[tuple[int, int]]:
    """(later, earlier) pairs whose shingle Jaccard reaches `threshold`; one per later text."""
    index = NearDuplicateIndex(threshold, num_perm)
    found = []
    for position, text in enumerate(texts):
        earlier = index.find(text)
        if earlier is not None:
            found.append((position, earlier))
        index.add(text)
    return found
