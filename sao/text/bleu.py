"""Self-BLEU: how much of each text's wording reappears in the rest of the corpus.

`self_bleu(texts)` is the mean over texts of the sentence BLEU of that text against all the
other texts as references, exactly as NLTK's
`sentence_bleu(others, text, weights=(1/N,) * N, smoothing_function=SmoothingFunction().method1)`
computes it, on ROUGE's tokens (`sao.text.tokens.words`):
- the modified precision of order k clips each n-gram's count in the text to its largest count
  in any one other text, over max(1, len − k + 1) n-grams; a zero clipped total becomes 0.1
  (method1's epsilon), but a text with no clipped unigram at all scores 0;
- the brevity penalty uses the other length closest to the text's own (ties to the shorter):
  exp(1 − r/c) when the text is not longer than it, else 1.

Edge cases: texts with no tokens are left out entirely (neither scored nor references); with
fewer than two texts left there is nothing to compare with, and the result is 0.0.

All pairs are never compared: n-grams get exact integer ids (sorting, no hashing), and for each
n-gram the largest count, the text holding it and the second-largest count are kept; the
largest count in the *other* texts is then the second-largest for the holder and the largest
for everyone else (a tie puts the same count in both places). Lengths work the same way on a
sorted list. Time is O(T log T) in the number of tokens T.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sao.text.tokens import words

EPSILON = 0.1  # NLTK SmoothingFunction().method1: a zero matched count counts as this


def self_bleu(texts: Sequence[str], max_n: int = 4) -> float:
    """Mean sentence BLEU (orders 1..max_n) of each non-empty text against all other ones."""
    toks = [ts for ts in (words(t) for t in texts) if ts]
    if len(toks) < 2:
        return float("nan")  # undefined: nothing to compare with (null in JSON, "–" in tables)
    return float(np.mean(sentence_scores(toks, max_n)))


def sentence_scores(toks: Sequence[Sequence[str]], max_n: int = 4) -> np.ndarray:
    """Sentence BLEU of each token list (all non-empty, at least two) against the others."""
    lengths = np.array([len(ts) for ts in toks], dtype=np.int64)
    if len(toks) < 2 or not lengths.all():
        raise ValueError("sentence_scores needs at least two token lists, none empty")
    if max_n < 1:
        raise ValueError(f"BLEU needs n-grams of order 1 or more, not up to {max_n}")
    row, grams = _token_ids(toks, lengths)
    unigrams = matched = _clipped_matches(row, grams, len(toks))
    log_p = np.zeros(len(toks))
    for order in range(1, max_n + 1):
        if order > 1:
            row, grams = _extend(row, grams)
            matched = _clipped_matches(row, grams, len(toks))
        total = np.maximum(1, lengths - order + 1)
        precision = np.where(matched > 0, matched, EPSILON) / total
        log_p += np.log(precision) * (1.0 / max_n)
    bleu = _brevity_penalty(lengths) * np.exp(log_p)
    return np.where(unigrams > 0, bleu, 0.0)  # NLTK: no matched unigram scores 0, unsmoothed


def _token_ids(toks: Sequence[Sequence[str]], lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each token's text index and vocabulary id, flattened text after text."""
    vocab: dict[str, int] = {}
    ids = (vocab.setdefault(w, len(vocab)) for ts in toks for w in ts)
    flat = np.fromiter(ids, dtype=np.int64, count=int(lengths.sum()))
    return np.repeat(np.arange(len(toks)), lengths), flat


def _extend(row: np.ndarray, grams: np.ndarray) -> tuple[np.ndarray, ...]:
    """Order-(k+1) n-gram ids from the order-k ones: each n-gram and the one after it."""
    # grams of one text are consecutive; the last one of each text has no successor
    follows = row[1:] == row[:-1]
    if not follows.any():
        return row[:0], grams[:0]
    first, second = grams[:-1][follows], grams[1:][follows]
    # the second n-gram's last token is what the longer n-gram adds; it is encoded by the
    # pair (first id, second id), which is unique because `second` determines that token
    _, ids = np.unique(first * (int(grams.max()) + 1) + second, return_inverse=True)
    return row[:-1][follows], ids.ravel()


def _clipped_matches(row: np.ndarray, grams: np.ndarray, n_texts: int) -> np.ndarray:
    """Per text: Σ over its n-grams of min(own count, largest count in any other text)."""
    if len(grams) == 0:
        return np.zeros(n_texts, dtype=np.int64)
    pairs, count = np.unique(grams * n_texts + row, return_counts=True)
    gram, text = pairs // n_texts, pairs % n_texts
    order = np.lexsort((-count, gram))  # by n-gram, largest count first
    gram, text, count = gram[order], text[order], count[order]
    head = np.ones(len(gram), dtype=bool)
    head[1:] = gram[1:] != gram[:-1]
    starts = np.flatnonzero(head)
    group = np.cumsum(head) - 1
    top, holder = count[starts], text[starts]
    runner_up = np.zeros(len(starts), dtype=np.int64)
    has_two = np.append(starts[1:], len(gram)) - starts > 1
    runner_up[has_two] = count[starts[has_two] + 1]
    others = np.where(text == holder[group], runner_up[group], top[group])
    return np.bincount(text, weights=np.minimum(count, others), minlength=n_texts)


def _brevity_penalty(lengths: np.ndarray) -> np.ndarray:
    """NLTK's brevity penalty of each text against the closest length among the others."""
    ref = _closest_other_length(lengths)
    return np.where(lengths > ref, 1.0, np.exp(1 - ref / lengths))


def _closest_other_length(lengths: np.ndarray) -> np.ndarray:
    """The other texts' length closest to each text's own; ties go to the shorter."""
    ordered = np.sort(lengths)
    left = np.searchsorted(ordered, lengths, side="left")
    right = np.searchsorted(ordered, lengths, side="right")
    big = np.iinfo(np.int64).max // 4
    below = np.where(left > 0, ordered[np.maximum(left - 1, 0)], -big)
    above = np.where(right < len(ordered), ordered[np.minimum(right, len(ordered) - 1)], big)
    nearest = np.where(lengths - below <= above - lengths, below, above)
    return np.where(right - left > 1, lengths, nearest)
