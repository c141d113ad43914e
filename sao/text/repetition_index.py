"""`RepetitionIndex`: the repetition rule (ROUGE-L F1 above a threshold against an earlier
text) for texts that arrive one at a time, exact, as `repetition.repetitions` is for a list."""

from __future__ import annotations

import functools
import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence

from sao.text.rouge import (
    REPETITION_ROUGE_L,
    SLACK,
    bounds_pass,
    check_threshold,
    ratio,
    rouge_l_f1,
)
from sao.text.tokens import words


@functools.cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


class RepetitionIndex:
    """Texts added one by one; `find` says whether a new text repeats an added one (ROUGE-L F1 >
    threshold), by the same exact rule as `repetitions`.

    The prefix filter of `repetitions` (ℓ = 2) without the length sort: each added text is
    indexed twice, by its short prefix (b − ⌊θb⌋ + 1 elements, for partners at least as long)
    and its long one (b − ⌊ρb⌋ + 1, for shorter partners); a new text probes the short index
    with its long prefix and the long index with its short one, keeping partners on the right
    side of its length. The lemma holds for any total order of the elements as long as every
    prefix in the index and the probe use the same one. The order is the element counts frozen
    at the last rebuild (rarest first), then a fixed tie-break that needs no data: non-stop-words
    before sklearn's English stop words, later occurrences of a token before earlier ones, then
    CRC-32 of the token (stable across processes, unlike `hash`). The index is rebuilt under
    fresh counts whenever its size doubles (from 64), so common tokens leave the prefixes, at
    O(1) amortised cost per text.
    """

    def __init__(self, threshold: float = REPETITION_ROUGE_L) -> None:
        check_threshold(threshold)
        self.threshold = threshold
        self._low = threshold - SLACK
        self._stop = _stop_words()
        self._elements: list[list[tuple[str, int]]] = []
        self._tokens: list[list[str]] = []
        self._signatures: list[int] = []
        self._counts: Counter[tuple[str, int]] = Counter()
        self._frozen: dict[tuple[str, int], int] = {}
        self._fixed: dict[tuple[str, int], tuple[bool, int, int, str]] = {}
        self._short: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._long: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._rebuild_at = _FIRST_REBUILD
        self._last: tuple[str, _Parsed] | None = None

    def __len__(self) -> int:
        return len(self._elements)

    def find(self, text: str) -> int | None:
        """Position of the first added text that `text` repeats, or None."""
        toks, elements, signature = self._parse(text)
        if not toks or self.threshold >= 1:
            return None
        a = len(toks)
        for position in self._candidates(elements):
            other = self._tokens[position]
            differing = (signature ^ self._signatures[position]).bit_count()
            if (
                bounds_pass(a, len(other), differing, self._low)
                and rouge_l_f1(other, toks) > self.threshold
            ):
                return position
        return None

    def add(self, text: str) -> int:
        """Remember `text`; returns its position (the order of adding, from 0)."""
        toks, elements, signature = self._parse(text)
        position = len(self._elements)
        self._elements.append(elements)
        self._tokens.append(toks)
        self._signatures.append(signature)
        self._counts.update(elements)
        if len(self._elements) >= self._rebuild_at:
            self._rebuild()
        else:
            self._index(position)
        return position

    def _parse(self, text: str) -> _Parsed:
        """Tokens, multiset elements and signature; the last text's are kept for `add`."""
        if self._last is not None and self._last[0] == text:
            return self._last[1]
        toks = words(text)
        elements = _elements(toks)
        signature = 0
        for element in elements:  # 256 bits: CRC-32 of the token, moved by the occurrence
            signature |= 1 << ((self._fixed_key(element)[2] + element[1] * 0x9E3779B1) % 256)
        parsed = (toks, elements, signature)
        self._last = (text, parsed)
        return parsed

    def _candidates(self, elements: list[tuple[str, int]]) -> list[int]:
        """Added texts sharing enough prefix elements with these, in order of adding."""
        ranked, a = self._ranked(elements), len(elements)
        shorter: Counter[int] = Counter()
        for element in ranked[: self._keep_long(a)]:
            shorter.update(self._short.get(element, ()))
        longer: Counter[int] = Counter()
        for element in ranked[: self._keep_short(a)]:
            longer.update(self._long.get(element, ()))
        least = 1 if self._low * (a + 1) < 2 else 2  # o = 1 can pass only beside a short text
        lengths = self._tokens
        found = [p for p, n in shorter.items() if n >= least and len(lengths[p]) <= a]
        found += [p for p, n in longer.items() if n >= least and len(lengths[p]) > a]
        return sorted(found)

    def _rebuild(self) -> None:
        """Re-rank by the counts so far and index every text's prefixes again."""
        self._frozen = dict(self._counts)
        self._short, self._long = defaultdict(list), defaultdict(list)
        for position in range(len(self._elements)):
            self._index(position)
        self._rebuild_at = 2 * len(self._elements)

    def _index(self, position: int) -> None:
        elements = self._elements[position]
        ranked, b = self._ranked(elements), len(elements)
        for element in ranked[: self._keep_short(b)]:
            self._short[element].append(position)
        for element in ranked[: self._keep_long(b)]:
            self._long[element].append(position)

    def _keep_short(self, length: int) -> int:
        return length - math.floor(self._low * length - SLACK) + 1

    def _keep_long(self, length: int) -> int:
        return length - math.floor(ratio(self._low) * length - SLACK) + 1

    def _ranked(self, elements: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Elements in the index's order: frozen count, then the fixed order."""
        frozen, fixed = self._frozen, self._fixed_key
        return sorted(elements, key=lambda e: (frozen.get(e, 0), fixed(e)))

    def _fixed_key(self, element: tuple[str, int]) -> tuple[bool, int, int, str]:
        key = self._fixed.get(element)
        if key is None:
            token, occurrence = element
            key = (token in self._stop, -occurrence, zlib.crc32(token.encode()), token)
            self._fixed[element] = key
        return key


_FIRST_REBUILD = 64
_Parsed = tuple[list[str], list[tuple[str, int]], int]


def _elements(toks: Sequence[str]) -> list[tuple[str, int]]:
    """The multiset as distinct elements: (token, how many times it came before), in order."""
    seen: dict[str, int] = {}
    elements = []
    for token in toks:
        occurrence = seen.get(token, 0)
        elements.append((token, occurrence))
        seen[token] = occurrence + 1
    return elements
