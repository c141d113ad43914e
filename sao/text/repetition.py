"""Repetition rate (the Self-Instruct rule) of a list of texts: which texts have a ROUGE-L F1
above 0.7 against some earlier text.

A prefix filter over rarest-first tokens proposes the only candidates that can pass, bounds on
length and shared tokens drop most of them, and the exact LCS (rouge-score's F1, to the bit)
decides. `repetition_index.RepetitionIndex` is the same rule for texts that arrive one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy import sparse

from sao.text.rouge import (
    REPETITION_ROUGE_L,
    SLACK,
    check_threshold,
    may_pass,
    ratio,
    rouge_l_f1,
)
from sao.text.tokens import words

_BLOCK_ENTRIES = 1 << 15  # probe prefix elements per sparse product in `repetitions`
_SIGNATURE_BITS = 256


def _floor(x: np.ndarray | float) -> np.ndarray:
    return np.floor(np.asarray(x) - SLACK).astype(np.int64)


def _need_shared(shared: np.ndarray, a: np.ndarray, b: np.ndarray, low: float) -> np.ndarray:
    """Enough shared prefix elements to be worth checking: 2, or 1 when o = 1 could pass."""
    return (shared >= 2) | ((shared >= 1) & (low * (a + b) < 2))


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
    check_threshold(threshold)
    if threshold >= 1:
        return []  # F1 never exceeds 1
    toks = [words(t) for t in texts]
    found: set[int] = set()
    for earlier, later in _similar_candidates(toks, threshold - SLACK):
        if later not in found and rouge_l_f1(toks[earlier], toks[later]) > threshold:
            found.add(later)
    return sorted(found)


def _similar_candidates(toks: Sequence[Sequence[str]], low: float) -> Iterator[tuple[int, int]]:
    """(earlier, later) index pairs that pass every bound, in no particular order."""
    lengths = np.array([len(ts) for ts in toks], dtype=np.int64)
    if not lengths.any():
        return
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    indptr, ranks = _ranked_elements([toks[i] for i in order], sorted_lengths)
    width = int(ranks.max()) + 1
    long_keep = sorted_lengths - _floor(ratio(low) * sorted_lengths) + 1
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
        keep = may_pass(lengths[x], lengths[y], differing, low)
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
