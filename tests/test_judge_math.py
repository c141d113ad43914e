"""Pure logic of the judge, its diagnostics and pair selection, on hand-computed values.

A fake list of single-order calls stands in for the engine here: these tests check arithmetic,
not the model (tests/test_judge_modes.py drives the real engines).
"""

import itertools
import math
import random

import numpy as np
import pytest

from sao.config import JudgeConfig, PairConfig
from sao.errors import SaoError
from sao.stages import pairs
from sao.stages.bradley_terry import complete, fit_strengths, schedule
from sao.stages.judge import judge, ordered_calls, pairwise_record
from sao.stages.judge_diagnostics import Diagnostics, is_cycle, run_summary
from sao.stages.verdicts import Call, Verdicts, first_probability

LOGPROB = JudgeConfig()
TEXT = JudgeConfig(mode="pairwise-text")


def logprob_record(k: int, first_wins: dict, cfg: JudgeConfig = LOGPROB) -> Verdicts:
    """A record from p(first wins) per shown order; None stands for a call with no verdict."""
    calls = {}
    for shown, p in first_wins.items():
        if p is None:
            calls[shown] = Call("unparsed", 1, "{}", no_label_mass=True)
            continue
        verdict = "first" if p > 0.5 else "second" if p < 0.5 else "tie"
        calls[shown] = Call(verdict, 1, "{}", p_first=p)
    return pairwise_record(k, calls, ordered_calls(schedule(k, cfg.opponents)), cfg)


def text_record(k: int, verdicts: dict) -> Verdicts:
    p = {"first": 1.0, "second": 0.0}
    calls = {s: Call(v, 3, v, p_first=p.get(v)) for s, v in verdicts.items()}
    return pairwise_record(k, calls, ordered_calls(schedule(k, None)), TEXT)


def random_first_wins(k: int, rng: random.Random) -> dict[tuple[int, int], float]:
    return {(a, b): rng.random() for a, b in itertools.permutations(range(k), 2)}


def test_ordered_calls_cover_both_orders_once():
    calls = ordered_calls(schedule(4, None))
    assert len(calls) == 4 * 3
    assert {(a, b) for a, b, _ in calls} == set(itertools.permutations(range(4), 2))
    assert all(order == ("forward" if a < b else "swapped") for a, b, order in calls)


def test_matrix_from_hand_computed_values():
    # (0 first) says first wins 0.8; (1 first) says first wins 0.6 -> P01 = (0.8 + 0.4) / 2
    v = logprob_record(2, {(0, 1): 0.8, (1, 0): 0.6})
    assert v.matrix[0][1] == pytest.approx(0.6)
    assert v.matrix[1][0] == pytest.approx(0.4)
    assert v.matrix[0][0] == v.matrix[1][1] == 0.5
    assert v.scores == pytest.approx([0.55, 0.45])
    # both orders picked the answer shown first: one decisive pair, one flip, no consistency
    d = v.diagnostics
    assert (d.decisive_pairs, d.position_flips, d.first_wins, d.decided_calls) == (1, 1, 2, 2)
    assert v.consistent == {}


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_matrix_invariants(k):
    v = logprob_record(k, random_first_wins(k, random.Random(k)))
    for i, j in itertools.product(range(k), repeat=2):
        assert 0.0 <= v.matrix[i][j] <= 1.0
        assert v.matrix[i][j] + v.matrix[j][i] == pytest.approx(1.0)
    assert all(v.matrix[i][i] == 0.5 for i in range(k))
    assert v.scores == pytest.approx(np.asarray(v.matrix).mean(axis=1).tolist(), abs=1e-6)


def test_pure_position_bias_cancels_and_is_measured():
    # a judge that always says "first wins" with 0.9 carries no preference after the swap
    k = 4
    v = logprob_record(k, {s: 0.9 for s in itertools.permutations(range(k), 2)})
    assert all(x == pytest.approx(0.5) for row in v.matrix for x in row)
    record = v.diagnostics.record()
    assert record["position_bias_rate"] == 1.0 and record["first_wins_rate"] == 1.0
    assert record["ties"] == 6 and record["tie_rate"] == 1.0


def test_reversing_responses_reverses_matrix():
    k = 5
    first_wins = random_first_wins(k, random.Random(7))
    perm = list(reversed(range(k)))  # new index n holds old response perm[n]
    permuted = {
        (a, b): first_wins[(perm[a], perm[b])] for a, b in itertools.permutations(range(k), 2)
    }
    p, q = logprob_record(k, first_wins).matrix, logprob_record(k, permuted).matrix
    for a, b in itertools.product(range(k), repeat=2):
        assert q[a][b] == pytest.approx(p[perm[a]][perm[b]])


def test_text_mode_counts_a_verdict_only_when_both_orders_agree():
    v = text_record(
        3,
        {
            (0, 1): "first", (1, 0): "second",  # 0 wins both orders
            (0, 2): "first", (2, 0): "first",  # each order picks the first shown: a tie
            (1, 2): "unparsed", (2, 1): "second",  # one reply unparsable: not measured
        },
    )  # fmt: skip
    assert v.matrix[0][1] == 1.0 and v.matrix[0][2] == 0.5
    assert v.estimated[1][2] and not v.estimated[0][1] and not v.estimated[0][2]
    assert v.consistent == {(0, 1): 0}
    assert set(v.flags) == {"judge_parse_failure:1", "judge_order_disagreement:1"}
    d = v.diagnostics.record()
    assert (d["parse_failures"], d["pairs_judged"], d["estimated_cells"]) == (1, 2, 1)
    assert (d["decisive_pairs"], d["position_flips"], d["ties"]) == (2, 1, 1)
    # the fitted cell follows the measured ones: 0 beat 1 and tied 2, so 1 is below 2
    assert v.matrix[1][2] < 0.5


def test_schedule_budget_is_a_connected_ring():
    assert schedule(5, None) == schedule(5, 4) == list(itertools.combinations(range(5), 2))
    ring = schedule(6, 2)
    assert ring == [(0, 1), (0, 5), (1, 2), (2, 3), (3, 4), (4, 5)]
    for k, n in [(10, 4), (10, 3), (8, 5), (9, 4)]:
        degree = [sum(i in p for p in schedule(k, n)) for i in range(k)]
        assert degree == [n] * k, (k, n)
    assert [sum(i in p for p in schedule(9, 3)) for i in range(9)] == [4] * 9  # odd K, odd n
    assert schedule(5, 1) == schedule(5, 2)  # the ring is the smallest connected schedule


def test_bradley_terry_recovers_the_unjudged_cells():
    theta = [1.2, 0.4, 0.0, -0.3, -1.3]
    truth = {
        (i, j): 1 / (1 + math.exp(-(theta[i] - theta[j])))
        for i, j in itertools.combinations(range(5), 2)
    }
    measured = {pair: truth[pair] for pair in schedule(5, 2)}
    matrix, estimated = complete(5, measured)
    for (i, j), p in truth.items():
        assert estimated[i][j] == ((i, j) not in measured)
        assert matrix[i][j] == pytest.approx(p, abs=0.02)
        assert matrix[i][j] + matrix[j][i] == pytest.approx(1.0)


def test_bradley_terry_stays_finite_on_outright_wins():
    theta = fit_strengths(3, {(0, 1): 1.0, (1, 2): 1.0})
    assert all(math.isfinite(t) for t in theta) and theta[0] > theta[1] > theta[2]
    assert fit_strengths(3, {}).tolist() == [0.0, 0.0, 0.0]


def test_intransitive_triples_and_length_correlation():
    cycle = [[0.5, 0.8, 0.3], [0.2, 0.5, 0.9], [0.7, 0.1, 0.5]]  # 0>1, 1>2, 2>0
    assert is_cycle(cycle, 0, 1, 2, band=0.02)
    assert is_cycle(cycle, 2, 1, 0, band=0.02)  # the same circle, read the other way
    tied = [[0.5, 0.8, 0.49], [0.2, 0.5, 0.9], [0.51, 0.1, 0.5]]  # 2 vs 0 within the band
    assert not is_cycle(tied, 0, 1, 2, band=0.02)
    assert is_cycle(tied, 0, 1, 2, band=0.0)  # no band: 0.51 is a preference
    d = Diagnostics(mode="x")
    d.observe_matrix(cycle, [[False] * 3 for _ in range(3)], band=0.02)
    d.observe_pairs([0.2, 0.4], scores=[0.3, 0.5, 0.7], lengths=[10, 20, 30])
    record = d.record()
    assert record["intransitive_triples"] == 1
    assert record["pair_margin_mean"] == pytest.approx(0.3)
    assert record["length_corr"] == pytest.approx(1.0)
    d.observe_pairs([], scores=[0.5, 0.5], lengths=[4, 9])
    assert d.record()["length_corr"] is None and d.record()["pair_margin_mean"] is None


def test_run_summary_adds_counts_before_taking_rates():
    a, b = Diagnostics(mode="x"), Diagnostics(mode="x")
    a.decisive_pairs, a.position_flips = 4, 1
    b.decisive_pairs, b.position_flips = 1, 1
    summary = run_summary(a.sums() + b.sums())
    assert summary["records"] == 2
    assert summary["position_bias_rate"] == pytest.approx(2 / 5)  # not the mean of 1/4 and 1


def test_first_probability_is_none_without_a_verdict():
    lp = {"A": math.log(0.3), "B": math.log(0.1)}
    assert first_probability(lp, "A", "B", min_mass=0.05) == pytest.approx(0.75)
    assert first_probability(lp, "A", "B", min_mass=0.5) is None  # 0.4 of the mass: no verdict
    assert first_probability({"A": -math.inf, "B": -math.inf}, "A", "B", 0.0) is None
    assert first_probability({"A": -math.inf, "B": 0.0}, "A", "B", 0.0) is None  # A absent
    assert first_probability({"B": 0.0}, "A", "B", 0.0) is None


def test_calls_without_a_verdict_leave_their_cells_estimated_and_no_pair():
    # answer 2's every call gave no verdict: its cells are estimated and nothing ties it to 0, 1
    k = 3
    wins = {s: 0.8 if s[0] < s[1] else 0.3 for s in itertools.permutations(range(k), 2)}
    wins.update({s: None for s in wins if 2 in s})
    v = logprob_record(k, wins)
    assert v.estimated[0][2] and v.estimated[1][2] and not v.estimated[0][1]
    assert "judge_no_label_mass:4" in v.flags and "judge_parse_failure:4" in v.flags
    stats = v.diagnostics.record()
    assert (stats["label_mass_failures"], stats["parse_failures"]) == (4, 4)
    assert pairs.select(v, [1] * k, PairConfig(min_margin=0.0)) == ([], ["no_pair:unmeasured"])
    # one order of (0, 2) still without a verdict, the other measured: the cell stays estimated
    wins[(0, 2)] = 0.9
    assert logprob_record(k, wins).estimated[0][2]


def test_a_pair_needs_a_strictly_higher_stored_score():
    # P01 = 0.5 + 5e-10 in float64 is exactly 0.5 as stored (float32): a tie, not a pair
    v = logprob_record(2, {(0, 1): 0.5 + 1e-9, (1, 0): 0.5})
    assert v.matrix[0][1] == 0.5 and v.scores[0] == v.scores[1]
    cfg = PairConfig(strategy="all-above-margin", min_margin=0.0)
    assert pairs.select(v, [1, 1], cfg) == ([], ["no_pair:all_tied"])
    assert v.diagnostics.record()["ties"] == 1


def scored(scores: list[float], consistent: dict | None = None) -> Verdicts:
    k = len(scores)
    return Verdicts(
        matrix=[[0.5] * k for _ in range(k)],
        estimated=[[False] * k for _ in range(k)],
        scores=scores,
        judgments=[],
        consistent=consistent or {},
    )


def test_best_worst_pair_and_margin():
    chosen, flags = pairs.select(scored([0.5, 0.7, 0.3, 0.5]), [5] * 4, PairConfig(min_margin=0.1))
    assert flags == []
    assert chosen == [
        {"chosen": 1, "rejected": 2, "margin": pytest.approx(0.4), "strategy": "best-worst"}
    ]


def test_no_pair_below_margin_or_tied():
    cfg = PairConfig(min_margin=0.05)
    assert pairs.select(scored([0.5, 0.52]), [1, 1], cfg) == ([], ["no_pair:below_min_margin"])
    cfg = PairConfig(min_margin=0.0)
    assert pairs.select(scored([0.5, 0.5, 0.5]), [1] * 3, cfg) == ([], ["no_pair:all_tied"])


def test_all_above_margin_lists_every_wide_enough_pair_widest_first():
    cfg = PairConfig(strategy="all-above-margin", min_margin=0.15)
    chosen, _ = pairs.select(scored([0.7, 0.5, 0.3]), [1] * 3, cfg)
    assert [(p["chosen"], p["rejected"]) for p in chosen] == [(0, 2), (0, 1), (1, 2)]
    assert [p["margin"] for p in chosen] == pytest.approx([0.4, 0.2, 0.2])


def test_consistent_only_keeps_pairs_that_survived_the_swap():
    cfg = PairConfig(strategy="consistent-only", min_margin=0.0)
    v = scored([0.7, 0.5, 0.3], consistent={(0, 2): 0, (1, 2): 2})  # (1, 2): 2 won both orders
    chosen, _ = pairs.select(v, [1] * 3, cfg)
    assert [(p["chosen"], p["rejected"]) for p in chosen] == [(0, 2)]
    assert pairs.select(scored([0.7, 0.3]), [1, 1], cfg) == ([], ["no_pair:inconsistent"])


def test_length_control_drops_pairs_whose_chosen_is_much_longer():
    cfg = PairConfig(strategy="all-above-margin", min_margin=0.0, max_length_ratio=1.5)
    chosen, flags = pairs.select(scored([0.7, 0.5, 0.3]), [40, 30, 20], cfg)
    assert [(p["chosen"], p["rejected"]) for p in chosen] == [(0, 1), (1, 2)]  # 40/20 > 1.5
    assert flags == ["pair_length_dropped:1"]
    cfg = PairConfig(max_length_ratio=1.5)
    assert pairs.select(scored([0.7, 0.3]), [100, 10], cfg) == (
        [],
        ["pair_length_dropped:1", "no_pair:length_control"],
    )


def test_logprob_judge_refuses_an_engine_without_logprobs():
    class TextOnly:
        name, supports_logprobs = "text-only", False

    with pytest.raises(SaoError, match="no log-probabilities"):
        judge(TextOnly(), [("hi", ["a", "b"])], None, LOGPROB)
