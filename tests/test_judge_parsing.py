"""Strict parsing of text verdicts and rubric answers, and the shipped probe set."""

import math

import pytest

from sao.judge_eval import bundled_probes, fit_rubric_scale, load_probes
from sao.stages.judge_rubric import expected_score, parse_score
from sao.stages.judge_text import parse_verdict

AB = ("A", "B")


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("A", "first"),
        ("B.", "second"),
        ("**B**", "second"),
        ("Verdict: A", "first"),
        ("After reading both, verdict: B", "second"),
        ('Verdict: "A"', "first"),
        ("Verdict: [B]", "second"),
        ("Verdict: A\nVerdict: A", "first"),
        ("Verdict: A or Verdict: B", "unparsed"),  # both labels: never guessed
        ("I think A is better.", "unparsed"),  # no verdict line
        ("a", "unparsed"),  # labels are case-sensitive
        ("Verdict: Answer A", "unparsed"),
        ("", "unparsed"),
        ("AB", "unparsed"),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply, AB) == verdict


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 4}', 4.0),
        ('{\n  "score": 0\n}', 0.0),
        ('{"score": 6}', None),
        ('{"score": 3.5}', None),
        ('{"score": true}', None),
        ('{"score": 3, "why": "ok"}', None),
        ("Score: 4", None),
        ("[4]", None),
    ],
)
def test_parse_score(reply, score):
    assert parse_score(reply) == score


def test_expected_score_renormalises_over_the_digits():
    lp = {str(n): -math.inf for n in range(6)}
    lp.update({"2": math.log(0.1), "4": math.log(0.3)})
    assert expected_score(lp, 0.05) == pytest.approx((2 * 0.1 + 4 * 0.3) / 0.4)
    assert expected_score(lp, 0.5) is None  # the digits hold 0.4 of the mass: no verdict
    assert expected_score(dict.fromkeys(lp, -math.inf), 0.0) is None


def test_shipped_probes():
    probes = load_probes(bundled_probes())
    assert len(probes) >= 60
    kinds = {p.kind for p in probes}
    assert kinds == {"fact", "truncation", "politeness", "instruction"}
    assert len({p.id for p in probes}) == len(probes)
    assert all(p.better != p.worse for p in probes)


def test_rubric_scale_fit_is_finite_and_sharper_for_cleaner_scores():
    noisy = fit_rubric_scale([(3, 2), (2, 3), (4, 2), (3, 3)])
    clean = fit_rubric_scale([(4, 1), (5, 2), (4, 2), (3, 1)])
    assert noisy is not None and clean is not None
    assert 0 < clean < noisy
    assert fit_rubric_scale([(3, 3), (None, 2)]) is None
