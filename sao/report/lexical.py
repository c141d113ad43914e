"""Lexical diversity of a list of texts: duplicates, near-duplicates, repetition, distinct-n.

Every metric is defined here in words and computed without comparing all pairs:
- exact-duplicate rate: share of texts equal to an earlier one after lower-casing and
  collapsing whitespace;
- near-duplicate rate: share of texts whose word-3-gram set has Jaccard ≥ 0.9 with an earlier
  text (MinHash LSH proposes candidates, the exact Jaccard decides);
- repetition rate (the Self-Instruct rule): share of texts whose ROUGE-L F1 against some
  earlier text exceeds 0.7; a prefix filter over rarest-first tokens proposes the only
  candidates that can pass, bounds on length and shared tokens drop most of them, and the
  exact LCS (rouge-score's F1, to the bit) decides. `RepetitionIndex` is the same rule for
  texts that arrive one at a time;
- distinct-n: distinct n-grams / all n-grams over the corpus.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH
from scipy import sparse

NEAR_DUP_JACCARD = 0.9
REPETITION_ROUGE_L = 0.7
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


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of a text (the whole text when it has fewer than n words)."""
    toks = words(text)
    if len(toks) < n:
        return {" ".join(toks)}
    return {" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)}


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


def rouge_l_f1(target: Sequence[str], prediction: Sequence[str]) -> float:
    """rouge-score's ROUGE-L F1 of two token lists, with its float steps (so equal to the bit)."""
    lcs = _lcs(target, prediction) if target and prediction else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(target)
    return 2 * precision * recall / (precision + recall)


def _lcs(x: Sequence[str], y: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004)."""
    if len(y) > len(x):
        x, y = y, x  # loop over the shorter one
    masks: dict[str, int] = {}
    for position, token in enumerate(x):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(x)) - 1
    row = full
    for token in y:
        matched = row & masks.get(token, 0)
        row = (row + matched) | (row - matched)
    return len(x) - (row & full).bit_count()


# Pruning bounds. F1 = 2·LCS/(a+b) for lengths a, b, and LCS ≤ the multiset overlap o ≤ min(a, b),
# so a pair can pass only when o > θ(a+b)/2. Then also b > θa/(2−θ) and o > θa/(2−θ) =: ρa, and
# o > θ·min(a, b). The bounds use θ − _SLACK (and floors a further −_SLACK) so that float rounding,
# here or in rouge's F1, can only keep a pair that exact arithmetic would drop, never the reverse.
_SLACK = 1e-9
_BLOCK_ENTRIES = 1 << 15  # probe prefix elements per sparse product in `repetitions`
_SIGNATURE_BITS = 256


def _floor(x: np.ndarray | float) -> np.ndarray:
    return np.floor(np.asarray(x) - _SLACK).astype(np.int64)


def _ratio(low: float) -> float:
    return low / (2 - low)


def _need_shared(shared: np.ndarray, a: np.ndarray, b: np.ndarray, low: float) -> np.ndarray:
    """Enough shared prefix elements to be worth checking: 2, or 1 when o = 1 could pass."""
    return (shared >= 2) | ((shared >= 1) & (low * (a + b) < 2))


def _may_pass(a: np.ndarray, b: np.ndarray, differing_bits: np.ndarray, low: float) -> np.ndarray:
    """Length bound and signature bound on the overlap, o ≤ (a + b − popcount(sig_a ^ sig_b))/2.

    A bit set in one signature only needs an element of the symmetric difference (a + b − 2o
    elements) hashed to it, so popcount(xor) ≤ a + b − 2o.
    """
    bound = low * (a + b)
    return (2 * np.minimum(a, b) > bound) & (a + b - differing_bits > bound)


def repetitions(texts: Sequence[str], threshold: float = REPETITION_ROUGE_L) -> list[int]:
    """Indices of texts whose ROUGE-L F1 against some earlier text exceeds `threshold`.

    Exact, without comparing all pairs. F1 is symmetric, so every similar pair is found once
    with texts sorted by length, (longer x, shorter-or-equal y), and its later text reported.
    Multiset elements (token, occurrence) are ranked rarest-first. Sharing o ≥ 2 elements puts
    the two rarest shared ones within the first a − o + 2 of x and b − o + 2 of y; with
    o > ρa and o > θb that is x's first a − ⌊ρa⌋ + 1 and y's first b − ⌊θb⌋ + 1 (prefix
    filter, ℓ = 2). A sparse product of those prefixes, a block of texts at a time, counts the
    shared prefix elements of every pair that has any; pairs with at least 2 (1 when o = 1 can
    already pass) then meet the length and signature bounds, and the survivors are scored.
    """
    _check_threshold(threshold)
    if threshold >= 1:
        return []  # F1 never exceeds 1
    toks = [words(t) for t in texts]
    found: set[int] = set()
    for earlier, later in _similar_candidates(toks, threshold - _SLACK):
        if later not in found and rouge_l_f1(toks[earlier], toks[later]) > threshold:
            found.add(later)
    return sorted(found)


def _check_threshold(threshold: float) -> None:
    if not threshold >= 0:
        raise ValueError(f"a ROUGE-L threshold is at least 0, not {threshold}")


def _similar_candidates(toks: Sequence[Sequence[str]], low: float) -> Iterator[tuple[int, int]]:
    """(earlier, later) index pairs that pass every bound, in no particular order."""
    lengths = np.array([len(ts) for ts in toks], dtype=np.int64)
    if not lengths.any():
        return
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    indptr, ranks = _ranked_elements([toks[i] for i in order], sorted_lengths)
    width = int(ranks.max()) + 1
    long_keep = sorted_lengths - _floor(_ratio(low) * sorted_lengths) + 1
    short_keep = sorted_lengths - _floor(low * sorted_lengths) + 1
    probe = _prefix_matrix(indptr, ranks, long_keep, width)
    index_t = _prefix_matrix(indptr, ranks, short_keep, width).T.tocsr()
    signatures = _signatures(indptr, ranks)
    for longer, shorter in _candidate_pairs(probe, index_t, sorted_lengths, signatures, low):
        pairs = np.sort(np.stack([order[longer], order[shorter]], axis=1), axis=1)
        yield from map(tuple, pairs.tolist())


def _ranked_elements(toks: Sequence[Sequence[str]], lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each text's multiset elements as corpus ranks (rarest first), ascending, CSR-style.

    Text k's ranks are ranks[indptr[k]:indptr[k + 1]].
    """
    vocab: dict[str, int] = {}
    flat = np.fromiter(
        (vocab.setdefault(w, len(vocab)) for ts in toks for w in ts),
        dtype=np.int64,
        count=int(lengths.sum()),
    )
    row = np.repeat(np.arange(len(toks)), lengths)
    by_token = np.lexsort((flat, row))
    token, row = flat[by_token], row[by_token]
    start = np.ones(len(token), dtype=bool)
    start[1:] = (token[1:] != token[:-1]) | (row[1:] != row[:-1])
    position = np.arange(len(token))
    occurrence = position - np.maximum.accumulate(np.where(start, position, 0))
    _, element = np.unique(token * (int(occurrence.max()) + 1) + occurrence, return_inverse=True)
    element = element.ravel()
    frequency = np.bincount(element)
    rank = np.empty(len(frequency), dtype=np.int64)
    rank[np.lexsort((np.arange(len(frequency)), frequency))] = np.arange(len(frequency))
    width = len(frequency)
    ranks = np.sort(row * width + rank[element]) - row * width  # rows stay in order
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    return indptr, ranks


def _prefix_matrix(
    indptr: np.ndarray, ranks: np.ndarray, keep: np.ndarray, width: int
) -> sparse.csr_matrix:
    """Binary CSR matrix of each text's first `keep` ranks (capped at its length)."""
    lengths = np.diff(indptr)
    keep = np.minimum(keep, lengths)
    row = np.repeat(np.arange(len(lengths)), lengths)
    inside = np.arange(len(ranks)) - indptr[row] < keep[row]
    columns = ranks[inside].astype(np.int32)
    pointers = np.concatenate(([0], np.cumsum(keep)))
    data = np.ones(len(columns), dtype=np.int32)
    return sparse.csr_matrix((data, columns, pointers), shape=(len(lengths), width))


def _signatures(indptr: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Each text's element set hashed into a 256-bit signature (4 uint64 words)."""
    words_per = _SIGNATURE_BITS // 64
    bit = (ranks.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(56)
    one_hot = np.zeros((len(ranks), words_per), dtype=np.uint64)
    one_hot[np.arange(len(ranks)), (bit >> np.uint64(6)).astype(np.int64)] = np.uint64(1) << (
        bit & np.uint64(63)
    )
    lengths = np.diff(indptr)
    signatures = np.zeros((len(lengths), words_per), dtype=np.uint64)
    filled = lengths > 0
    signatures[filled] = np.bitwise_or.reduceat(one_hot, indptr[:-1][filled], axis=0)
    return signatures


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy ≥ 2 has it built in)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)


def _candidate_pairs(
    probe: sparse.csr_matrix,
    index_t: sparse.csr_matrix,
    lengths: np.ndarray,
    signatures: np.ndarray,
    low: float,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(longer, shorter) positions, in length order, of the pairs that pass every bound."""
    for start, stop in _blocks(probe.indptr):
        shared = probe[start:stop] @ index_t[:, :stop]
        x, y = _enough_shared(shared, start, lengths, low)
        differing = _popcount(signatures[x] ^ signatures[y]).sum(axis=1)
        keep = _may_pass(lengths[x], lengths[y], differing, low)
        yield x[keep], y[keep]


def _blocks(indptr: np.ndarray) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges holding about _BLOCK_ENTRIES prefix elements each (≥ 1 row)."""
    rows, start = len(indptr) - 1, 0
    while start < rows:
        stop = int(np.searchsorted(indptr, indptr[start] + _BLOCK_ENTRIES, side="right")) - 1
        stop = min(rows, max(stop, start + 1))
        yield start, stop
        start = stop


def _enough_shared(
    shared: sparse.csr_matrix, start: int, lengths: np.ndarray, low: float
) -> tuple[np.ndarray, ...]:
    """Entries (x, y < x) of a block's product with enough shared prefix elements.

    Most entries have 1 and fail on the data alone; only rows short enough that o = 1 could
    pass look at the lengths of each pair.
    """
    hit = shared.data >= 2
    row_nnz = np.diff(shared.indptr)
    short = low * (lengths[start : start + len(row_nnz)] + 1) < 2
    if short.any():
        maybe = np.flatnonzero(np.repeat(short, row_nnz))
        x = np.searchsorted(shared.indptr, maybe, side="right") - 1 + start
        y = shared.indices[maybe]
        hit[maybe] = _need_shared(shared.data[maybe], lengths[x], lengths[y], low)
    entries = np.flatnonzero(hit)
    x = np.searchsorted(shared.indptr, entries, side="right") - 1 + start
    y = shared.indices[entries].astype(np.int64)
    earlier = y < x
    return x[earlier], y[earlier]


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
        _check_threshold(threshold)
        self.threshold = threshold
        self._low = threshold - _SLACK
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
                _bounds_pass(a, len(other), differing, self._low)
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
        return length - math.floor(self._low * length - _SLACK) + 1

    def _keep_long(self, length: int) -> int:
        return length - math.floor(_ratio(self._low) * length - _SLACK) + 1

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


def _bounds_pass(a: int, b: int, differing: int, low: float) -> bool:
    """The scalar form of `_may_pass` for one pair."""
    bound = low * (a + b)
    return 2 * min(a, b) > bound and a + b - differing > bound


def _elements(toks: Sequence[str]) -> list[tuple[str, int]]:
    """The multiset as distinct elements: (token, how many times it came before), in order."""
    seen: dict[str, int] = {}
    elements = []
    for token in toks:
        occurrence = seen.get(token, 0)
        elements.append((token, occurrence))
        seen[token] = occurrence + 1
    return elements


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the corpus (0 when there are none)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        toks = words(text)
        grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0
