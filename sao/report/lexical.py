"""Lexical diversity of a list of texts: duplicates, near-duplicates, repetition, distinct-n.

Every metric is defined here in words and computed without comparing all pairs:
- exact-duplicate rate: share of texts equal to an earlier one after lower-casing and
  collapsing whitespace;
- near-duplicate rate: share of texts whose word-3-gram set has Jaccard ≥ 0.9 with an earlier
  text (MinHash LSH proposes candidates, the exact Jaccard decides);
- repetition rate (the Self-Instruct rule): share of texts whose ROUGE-L F1 against some
  earlier text exceeds 0.7; a prefix filter over rarest-first tokens proposes the only
  candidates that can pass, and rouge-score decides;
- distinct-n: distinct n-grams / all n-grams over the corpus.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from datasketch import MinHash, MinHashLSH
from rouge_score import rouge_scorer, tokenizers

NEAR_DUP_JACCARD = 0.9
REPETITION_ROUGE_L = 0.7
_TOKENIZER = tokenizers.DefaultTokenizer(use_stemmer=False)


def words(text: str) -> list[str]:
    """ROUGE's tokens: lower-cased alphanumeric runs."""
    return _TOKENIZER.tokenize(text)


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


def near_duplicates(
    texts: Sequence[str], threshold: float = NEAR_DUP_JACCARD, num_perm: int = 128
) -> list[tuple[int, int]]:
    """(later, earlier) pairs whose shingle Jaccard reaches `threshold`; one per later text.

    The LSH bands are tuned 0.1 below the threshold, so pairs just above it are rarely missed
    (LSH recall is ~½ at its own threshold); the exact Jaccard then decides.
    """
    lsh = MinHashLSH(threshold=max(0.5, threshold - 0.1), num_perm=num_perm)
    sets = [shingles(t) for t in texts]
    found = []
    for index, grams in enumerate(sets):
        signature = MinHash(num_perm=num_perm, seed=1)
        signature.update_batch([g.encode() for g in grams])
        for key in sorted(lsh.query(signature)):
            other = sets[key]
            if len(grams & other) / len(grams | other) >= threshold:
                found.append((index, key))
                break
        lsh.insert(index, signature)
    return found


def _prefix(tokens: list[tuple[str, int]], rank: dict, keep: int) -> list[tuple[str, int]]:
    return sorted(tokens, key=lambda t: rank[t])[:keep]


def repetitions(texts: Sequence[str], threshold: float = REPETITION_ROUGE_L) -> list[int]:
    """Indices of texts whose ROUGE-L F1 against some earlier text exceeds `threshold`.

    F1 = 2·LCS/(a+b) > θ needs LCS > θ(a+b)/2, and LCS is at most both the shorter length and
    the multiset overlap. So b > θa/(2−θ) and the overlap must exceed t = θ(a+b)/2 ≥ θa/(2−θ);
    two multisets sharing more than t of a's a elements must share one of a's a − ⌊t⌋ rarest:
    only texts that share a token among those prefixes are scored.
    """
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    toks = [words(t) for t in texts]
    # multiset elements (token, occurrence number); rarest first across the corpus
    counts = [Counter(ts) for ts in toks]
    elems = [[(w, k) for w, c in cnt.items() for k in range(c)] for cnt in counts]
    freq = Counter(e for es in elems for e in es)
    rank = {e: (freq[e], e) for e in freq}
    ratio = threshold / (2 - threshold)
    index: dict[tuple[str, int], list[int]] = defaultdict(list)
    repeats = []
    for i, es in enumerate(elems):
        a = len(es)
        if a == 0:
            continue
        need = math.floor(ratio * a)  # the overlap must exceed this
        prefix = _prefix(es, rank, a - need)
        candidates = sorted({j for e in prefix for j in index[e]})
        mine = counts[i]
        for j in candidates:
            b = len(elems[j])
            bound = threshold * (a + b) / 2
            if min(a, b) <= bound:
                continue  # too different in length to reach the threshold
            if sum((mine & counts[j]).values()) <= bound:
                continue  # too few shared tokens: the LCS cannot be long enough
            if scorer.score(texts[j], texts[i])["rougeL"].fmeasure > threshold:
                repeats.append(i)
                break
        for e in prefix:
            index[e].append(i)
    return repeats


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the corpus (0 when there are none)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        toks = words(text)
        grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0
