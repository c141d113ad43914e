"""Diversity metrics against hand-computed values and a brute-force reference."""

import itertools
import math
import random

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer, tokenizers

from sao.report.spread import cluster_coverage, mean_pairwise_cosine, vendi_score
from sao.text import repetition
from sao.text.bleu import self_bleu
from sao.text.duplicates import exact_duplicates, near_duplicates
from sao.text.ngrams import distinct_n, shingles
from sao.text.repetition import repetitions
from sao.text.repetition_index import RepetitionIndex
from sao.text.rouge import rouge_l_f1
from sao.text.tokens import words


def test_distinct_n_by_hand():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["a b", "c d"], 2) == 1.0
    assert distinct_n(["one"], 2) == 0.0


def test_exact_duplicates_ignore_case_and_spacing():
    assert exact_duplicates(["Hi  there", "hi there", "x", "X "]) == [1, 3]


def test_repetition_rule_is_rouge_l_above_0_7_against_an_earlier_text():
    texts = [
        "the cat sat on the mat",
        "the cat sat on a mat",  # LCS 5 of 6 and 6: F1 0.83
        "a b c d e f g h i j",
        "a b c d e f g x y z",  # LCS 7 of 10 and 10: F1 exactly 0.7, not above
        "a b c d e f g h y z",  # LCS 8 with text 2: F1 0.8
        "completely different words here",
    ]
    assert repetitions(texts) == [1, 4]


def test_repetition_pruning_finds_exactly_what_all_pairs_find():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(12)]
    texts = []
    for _ in range(150):
        if texts and rng.random() < 0.4:  # an edited copy of an earlier text
            base = rng.choice(texts).split()
            for _ in range(rng.randint(0, 4)):
                base[rng.randrange(len(base))] = rng.choice(vocab)
            texts.append(" ".join(base))
        else:
            texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 12))))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    brute = [
        i
        for i in range(len(texts))
        if any(scorer.score(texts[j], texts[i])["rougeL"].fmeasure > 0.7 for j in range(i))
    ]
    assert 10 < len(brute) < 140  # the corpus exercises both outcomes
    assert repetitions(texts) == brute


def _edited_corpus(seed: int, size: int, vocab: list[str], edits: int) -> list[str]:
    """Random texts plus many copies of earlier ones with words replaced, dropped or added."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(size):
        if texts and rng.random() < 0.5:
            base = rng.choice(texts).split() or ["w0"]
            for _ in range(rng.randint(0, edits)):
                base[rng.randrange(len(base))] = rng.choice(vocab)
            if len(base) > 1 and rng.random() < 0.3:
                base.pop(rng.randrange(len(base)))
            if rng.random() < 0.3:
                base.insert(rng.randint(0, len(base)), rng.choice(vocab))
            texts.append(" ".join(base))
        elif rng.random() < 0.05:
            texts.append(rng.choice(["", "!!", "one"]))  # no tokens, and single tokens
        else:
            texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 16))))
    return texts


def _best_earlier_f1(texts: list[str]) -> list[float]:
    """Each text's highest rouge-score ROUGE-L F1 against any earlier text (all pairs)."""
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    return [
        max((scorer.score(texts[j], texts[i])["rougeL"].fmeasure for j in range(i)), default=0)
        for i in range(len(texts))
    ]


@pytest.fixture(scope="module")
def repetitive() -> tuple[list[str], list[float]]:
    """320 texts from 29 words, half of them edited copies, and their all-pairs best F1."""
    texts = _edited_corpus(7, 320, [f"w{i}" for i in range(25)] + ["the", "a", "of", "to"], 5)
    return texts, _best_earlier_f1(texts)


@pytest.mark.parametrize("threshold", [0.7, 0.5, 0.85])
@pytest.mark.parametrize("block", [1 << 15, 16])  # one sparse product, or many small ones
def test_repetitions_equal_all_pairs_on_a_larger_repetitive_corpus(
    monkeypatch, repetitive, threshold, block
):
    monkeypatch.setattr(repetition, "_BLOCK_ENTRIES", block)
    texts, best_f1 = repetitive
    brute = [i for i, best in enumerate(best_f1) if best > threshold]
    assert 30 < len(brute) < 300
    assert repetitions(texts, threshold) == brute


@pytest.mark.parametrize("threshold", [0.7, 0.5])
def test_repetition_index_finds_one_by_one_what_all_pairs_find(repetitive, threshold):
    texts, best_f1 = repetitive
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    index, flagged = RepetitionIndex(threshold), []
    for i, text in enumerate(texts):  # 320 texts: the index is rebuilt at 64, 128 and 256
        found = index.find(text)
        if found is not None:
            flagged.append(i)
            first = next(
                j for j in range(i) if scorer.score(texts[j], text)["rougeL"].fmeasure > threshold
            )
            assert found == first
        assert index.add(text) == i
    assert flagged == [i for i, best in enumerate(best_f1) if best > threshold]
    assert flagged == repetitions(texts, threshold)
    assert len(index) == len(texts)


def test_repetition_index_by_hand():
    index = RepetitionIndex()
    assert index.find("the cat sat on the mat") is None
    assert index.add("the cat sat on the mat") == 0
    assert index.add("a b c d e f g h i j") == 1
    assert index.find("the cat sat on a mat") == 0  # F1 0.83
    assert index.find("a b c d e f g x y z") is None  # F1 exactly 0.7, not above
    assert index.find("A b c d e f g h y z!") == 1  # F1 0.8, case and punctuation ignored
    assert index.find("") is None and index.find("?!") is None
    assert index.add("") == 2


def test_words_and_f1_are_rouge_scores_own():
    rng = random.Random(5)
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    for _ in range(500):
        text = "".join(rng.choice("aZ9 _-.,\n\tÉéİß€日'") for _ in range(rng.randint(0, 20)))
        assert words(text) == tokenizer.tokenize(text)
    for _ in range(500):
        x = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]  # past one 64-bit word
        y = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        assert rouge_l_f1(x, y) == rouge_scorer._score_lcs(x, y).fmeasure


def _nltk_self_bleu(texts: list[str], max_n: int = 4) -> float:
    toks = [t for t in map(words, texts) if t]
    weights = (1 / max_n,) * max_n
    smooth = SmoothingFunction().method1
    scores = [
        sentence_bleu(toks[:i] + toks[i + 1 :], hyp, weights, smoothing_function=smooth)
        for i, hyp in enumerate(toks)
    ]
    return sum(scores) / len(scores)


@pytest.mark.parametrize("max_n", [4, 2, 1])
def test_self_bleu_equals_nltk_sentence_bleu_against_all_others(max_n):
    rng = random.Random(2)
    vocab = ["the", "cat", "dog", "sat", "on", "mat", "a", "ran", "far"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(24)]
    texts += [texts[0], texts[3], texts[3], "cat", "the cat", "zebra", "", "?"]  # dups, short
    assert self_bleu(texts, max_n) == pytest.approx(_nltk_self_bleu(texts, max_n), rel=1e-12)


def test_self_bleu_by_hand():
    # "a b" against "a c": unigrams 1/2, bigrams 0 → 0.1/1 (method1), lengths equal so bp 1
    assert self_bleu(["a b", "a c"], max_n=2) == pytest.approx(math.sqrt(0.5 * 0.1))
    # "a" against "a b c": precision 1, bp e^(1−3/1); "a b c" against "a": 1/3, longer so bp 1
    assert self_bleu(["a", "a b c"], max_n=1) == pytest.approx((math.exp(-2) + 1 / 3) / 2)
    # duplicates match fully up to 3-grams; a 3-word text has no 4-gram: 0 → 0.1
    assert self_bleu(["the cat sat", "The cat sat."]) == pytest.approx(0.1**0.25)
    # the clip is the largest count in any one other text, not the sum over them
    assert self_bleu(["x x", "x y", "x z"], max_n=1) == pytest.approx((1 / 2 + 1 / 2 + 1 / 2) / 3)
    assert self_bleu(["a b", "c d"]) == 0.0  # no shared unigram: 0, unsmoothed


def test_self_bleu_without_two_texts_to_compare_is_undefined():
    assert math.isnan(self_bleu([]))
    assert math.isnan(self_bleu(["only one text here"]))
    assert math.isnan(self_bleu(["a text", "", "  ?! "]))  # texts without tokens are left out
    assert self_bleu(["a b", "", "a b"]) == self_bleu(["a b", "a b"])


def test_near_duplicates_by_jaccard_of_word_trigrams():
    base = "please explain how photosynthesis turns light water and air into sugar for plants"
    texts = [base, base + " today", "an unrelated question about tax forms and deadlines", base]
    a, b = shingles(base), shingles(base + " today")
    assert len(a & b) / len(a | b) == pytest.approx(11 / 12)
    assert near_duplicates(texts) == [(1, 0), (3, 0)]
    assert near_duplicates(texts, threshold=0.95) == [(3, 0)]


def test_vendi_identical_vs_orthogonal():
    assert vendi_score(np.ones((5, 8))) == pytest.approx(1.0)
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)
    two_groups = np.array([[1, 0]] * 3 + [[0, 1]] * 3, dtype=float)
    assert vendi_score(two_groups) == pytest.approx(2.0)


def test_mean_pairwise_cosine_matches_all_pairs():
    x = np.random.default_rng(0).normal(size=(20, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = [unit[i] @ unit[j] for i, j in itertools.combinations(range(20), 2)]
    assert mean_pairwise_cosine(x) == pytest.approx(np.mean(pairs))
    assert mean_pairwise_cosine(np.eye(4)) == pytest.approx(0.0)


def test_cluster_coverage_separates_a_narrow_run_from_a_broad_one():
    rng = np.random.default_rng(1)
    centres = np.eye(8) * 10
    broad = np.vstack([c + rng.normal(size=(10, 8)) * 0.1 for c in centres])  # all 8 topics
    narrow = centres[0] + rng.normal(size=(80, 8)) * 0.1  # one topic
    result = cluster_coverage({"broad": broad, "narrow": narrow}, clusters=8)
    assert result["broad"]["hit"] == 1.0 and result["broad"]["entropy"] > 0.95
    assert result["narrow"]["hit"] == 1 / 8 and result["narrow"]["entropy"] == 0.0


def test_embedding_model_ranks_paraphrases_above_unrelated_text():
    from sao.text.embed import embed

    vectors = embed(
        ["How do I bake sourdough bread?", "What is the way to make sourdough bread?",
         "The quarterly tax filing deadline is in April."]
    )  # fmt: skip
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.7 > 0.3 > vectors[0] @ vectors[2]
    assert mean_pairwise_cosine(vectors[:2]) > mean_pairwise_cosine(vectors)
