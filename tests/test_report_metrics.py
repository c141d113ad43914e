"""Diversity metrics against hand-computed values and a brute-force reference."""

import itertools
import random

import numpy as np
import pytest
from rouge_score import rouge_scorer

from sao.report.lexical import (
    distinct_n,
    exact_duplicates,
    near_duplicates,
    repetitions,
    shingles,
)
from sao.report.spread import cluster_coverage, mean_pairwise_cosine, vendi_score


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
    from sao.report.embed import embed

    vectors = embed(
        ["How do I bake sourdough bread?", "What is the way to make sourdough bread?",
         "The quarterly tax filing deadline is in April."]
    )  # fmt: skip
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.7 > 0.3 > vectors[0] @ vectors[2]
    assert mean_pairwise_cosine(vectors[:2]) > mean_pairwise_cosine(vectors)
