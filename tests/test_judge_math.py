"""Pure logic of the judge and pair selection, on hand-computed values."""

import itertools
import math
import random

import pytest

from sao.config import PairConfig
from sao.engines.base import normalise_pair
from sao.stages import pairs
from sao.stages.judge import ordered_pairs, preference_matrix, row_means


def random_first_wins(k: int, rng: random.Random) -> dict[tuple[int, int], float]:
    return {(a, b): rng.random() for a, b, _ in ordered_pairs(k)}


def test_ordered_pairs_cover_both_orders_once():
    calls = ordered_pairs(4)
    assert len(calls) == 4 * 3
    assert {(a, b) for a, b, _ in calls} == set(itertools.permutations(range(4), 2))
    assert all(order == ("forward" if a < b else "swapped") for a, b, order in calls)


def test_matrix_from_hand_computed_values():
    # (0 first) says first wins 0.8; (1 first) says first wins 0.6 -> P01 = (0.8 + 0.4) / 2
    p = preference_matrix(2, {(0, 1): 0.8, (1, 0): 0.6})
    assert p[0][1] == pytest.approx(0.6)
    assert p[1][0] == pytest.approx(0.4)
    assert p[0][0] == p[1][1] == 0.5
    assert row_means(p) == pytest.approx([0.55, 0.45])


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_matrix_invariants(k):
    rng = random.Random(k)
    p = preference_matrix(k, random_first_wins(k, rng))
    for i, j in itertools.product(range(k), repeat=2):
        assert 0.0 <= p[i][j] <= 1.0
        assert p[i][j] + p[j][i] == pytest.approx(1.0)
    assert all(p[i][i] == 0.5 for i in range(k))


def test_pure_position_bias_cancels():
    # a judge that always says "first wins" with 0.9 carries no preference after the swap
    k = 4
    p = preference_matrix(k, {(a, b): 0.9 for a, b, _ in ordered_pairs(k)})
    assert all(v == pytest.approx(0.5) for row in p for v in row)


def test_reversing_responses_reverses_matrix():
    k = 5
    rng = random.Random(7)
    first_wins = random_first_wins(k, rng)
    perm = list(reversed(range(k)))  # new index n holds old response perm[n]
    permuted = {(a, b): first_wins[(perm[a], perm[b])] for a, b, _ in ordered_pairs(k)}
    p, q = preference_matrix(k, first_wins), preference_matrix(k, permuted)
    for a, b in itertools.product(range(k), repeat=2):
        assert q[a][b] == pytest.approx(p[perm[a]][perm[b]])


def test_normalise_pair():
    assert normalise_pair({"A": math.log(0.3), "B": math.log(0.1)}, "A", "B") == pytest.approx(0.75)
    assert normalise_pair({"A": -math.inf, "B": -math.inf}, "A", "B") == 0.5
    assert normalise_pair({"A": -1000.0, "B": 0.0}, "A", "B") == pytest.approx(0.0)


def test_best_worst_pair_and_margin():
    chosen, flags = pairs.select([0.5, 0.7, 0.3, 0.5], PairConfig(min_margin=0.1))
    assert flags == []
    assert chosen == [
        {"chosen": 1, "rejected": 2, "margin": pytest.approx(0.4), "strategy": "best-worst"}
    ]


def test_no_pair_below_margin_or_tied():
    assert pairs.select([0.5, 0.52], PairConfig(min_margin=0.05)) == (
        [],
        ["no_pair:below_min_margin"],
    )
    assert pairs.select([0.5, 0.5, 0.5], PairConfig(min_margin=0.0)) == ([], ["no_pair:all_tied"])
