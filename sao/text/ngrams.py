"""Word n-grams: the shingles of a text, and a corpus' distinct-n (distinct / all n-grams)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sao.text.tokens import words


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of a text (the whole text when it has fewer than n words)."""
    toks = words(text)
    if len(toks) < n:
        return {" ".join(toks)}
    return {" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the corpus (0 when there are none)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        toks = words(text)
        grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """Within one text: the share of its word n-grams that repeat an n-gram earlier in it
    (0 for a text of fewer than n + 1 words)."""
    toks = words(text)
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)
