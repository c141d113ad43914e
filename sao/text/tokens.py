"""Words as ROUGE counts them, and the key under which two texts are exact duplicates."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """ROUGE's tokens: lower-cased alphanumeric runs.

    The same list as rouge-score's `DefaultTokenizer(use_stemmer=False)` (which lower-cases,
    turns every run of other characters into a space and splits), found in one pass.
    """
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    """Lower-cased with whitespace collapsed: the key for exact duplicates."""
    return re.sub(r"\s+", " ", text.strip().lower())
