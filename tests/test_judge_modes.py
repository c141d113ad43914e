"""Every judge mode on the embedded model through the real hf and vLLM engines."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from sao.models import resolve_model
from tests.conftest import requires, run_sao
from tests.dtypes import TEST_DTYPE, batch_tolerance
from tests.e2e_checks import script_json
from tests.judge_checks import check_judge

pytestmark = pytest.mark.slow
ENGINES = [
    "hf",
    pytest.param(
        "vllm",
        marks=requires("vllm"),
    ),
]


@pytest.fixture(scope="module", params=ENGINES)
def judged(request) -> dict:
    # hf generates text slowly on 2 cores: two probe kinds there, all four on vLLM
    probes = "2" if request.param == "hf" else "4"
    return script_json("tests/judge_modes.py", request.param, probes, TEST_DTYPE)


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded model's tokenizer, loaded here, not through an engine."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)


def side(p_better: float) -> str:
    """The test's own verdict rule: P(better) above ½ is right, below is wrong, ½ is a tie."""
    if p_better > 0.5:
        return "better"
    return "worse" if p_better < 0.5 else "tie"


def reply_tokens(raw: str, tokenizer, engine: str, cap: int) -> int:
    """Tokens a greedy reply took, recounted: its text re-tokenized, plus the end-of-turn token
    where the engine counts it (vLLM's token_ids keep it; hf cuts the reply before it), which a
    reply stopped at the cap never generated."""
    n = len(tokenizer(raw, add_special_tokens=False)["input_ids"])
    return min(n + 1, cap) if engine == "vllm" else n


def test_every_mode_holds_matrix_invariants_and_recountable_diagnostics(judged):
    for name, case in judged["cases"].items():
        for rec in case["records"]:
            try:
                check_judge(rec, case["config"])
            except AssertionError as exc:
                raise AssertionError(f"case {name}: {exc}") from exc


def test_generated_tokens_are_recounted_from_the_calls_and_the_replies(judged, tokenizer):
    """A label read generates one token per call; a text or JSON reply is re-tokenized. The
    stored counts and the engine's own counter must both equal the recount."""
    for name, case in judged["cases"].items():
        mode, scoring = case["config"]["mode"], case["config"]["rubric_scoring"]
        replies = mode == "pairwise-text" or (mode == "rubric" and scoring == "json")
        recounted = 0
        for rec in case["records"]:
            stored = [j["tokens"] for j in rec["judgments"]]
            if not replies:
                counts = [1] * len(rec["judgments"])
            else:
                cap = case["config"]["max_tokens"]
                counts = [
                    reply_tokens(j["raw"], tokenizer, judged["engine"], cap)
                    for j in rec["judgments"]
                ]
            wrong = [
                (j["raw"], have, want)
                for j, have, want in zip(rec["judgments"], stored, counts, strict=True)
                if have != want
            ]
            assert not wrong, (name, wrong)  # (reply, stored tokens, recount)
            assert rec["judge_stats"]["generated_tokens"] == sum(counts), name
            recounted += sum(counts)
        assert case["engine_generated_tokens"] == recounted, name


def test_logprob_measures_every_pair(judged):
    for rec in judged["cases"]["logprob"]["records"]:
        assert rec["judge_stats"]["calls"] == 12  # K=4: 6 pairs, both orders
        assert rec["judge_stats"]["generated_tokens"] == 12
        assert not any(map(any, rec["pref_estimated"]))


def test_a_pairs_budget_estimates_the_unjudged_cells(judged):
    # K=4 with 1 opponent each: the ring 0-1-2-3-0 is judged, the two diagonals are fitted
    for rec, full in zip(
        judged["cases"]["logprob-budget"]["records"],
        judged["cases"]["logprob"]["records"],
        strict=True,
    ):
        assert rec["judge_stats"]["calls"] == 8
        assert {
            (i, j) for i in range(4) for j in range(i + 1, 4) if rec["pref_estimated"][i][j]
        } == {
            (0, 2),
            (1, 3),
        }
        for i, j in [(0, 1), (1, 2), (2, 3), (0, 3)]:  # judged cells equal the full run's
            # ... up to the dtype's batch tolerance: the two runs batch the calls differently
            assert rec["pref_matrix"][i][j] == pytest.approx(
                full["pref_matrix"][i][j], abs=batch_tolerance()
            )


def test_reversing_the_answers_reverses_the_matrix(judged):
    # P from both orders is symmetric in position: answer a of the reversed list is k-1-a
    for forward, backward, full in zip(
        judged["reversal"]["forward"],
        judged["reversal"]["reversed"],
        judged["cases"]["logprob"]["records"],
        strict=True,
    ):
        k, tol = len(forward), batch_tolerance()  # reversed answers batch differently
        for a in range(k):
            for b in range(k):
                assert backward[a][b] == pytest.approx(forward[k - 1 - a][k - 1 - b], abs=tol)
                assert forward[a][b] == pytest.approx(full["pref_matrix"][a][b], abs=tol)


def test_text_verdicts_count_only_when_both_orders_agree(judged):
    for rec in judged["cases"]["text"]["records"]:
        verdicts = {(j["i"], j["j"]): j["verdict"] for j in rec["judgments"]}
        for (i, j), v in verdicts.items():
            if i > j or rec["pref_estimated"][i][j]:
                continue
            w = verdicts[(j, i)]
            agreed = v != w  # "first" then "second": the same answer won both times
            assert rec["pref_matrix"][i][j] in ((1.0, 0.0) if agreed else (0.5,))


def test_rubric_scores_come_from_digit_probabilities_or_strict_json(judged):
    for rec in judged["cases"]["rubric"]["records"]:
        for j in rec["judgments"]:
            assert set(json.loads(j["raw"])) == {str(n) for n in range(6)}
            assert j["tokens"] == 1
    for rec in judged["cases"]["rubric-json"]["records"]:
        for j in rec["judgments"]:
            if j["verdict"] != "unparsed":
                assert json.loads(j["raw"]) == {"score": int(j["score"])}


def test_judge_eval_rates_are_recounted_from_the_raw_p_better(judged):
    """Accuracy, ties and position bias of every mode, recounted with the test's own rule."""
    modes = judged["eval"]["modes"]
    for mode, r in modes.items():
        calls = [side(p) for pair in r["p_better"] for p in pair]
        assert r["accuracy"] == pytest.approx(calls.count("better") / len(calls)), mode
        assert r["tie_rate"] == pytest.approx(calls.count("tie") / len(calls)), mode
        flips = [side(a) != side(b) for a, b in r["p_better"]]
        assert r["position_bias_rate"] == pytest.approx(sum(flips) / len(flips)), mode
    assert modes["single-order"]["generated_tokens_per_comparison"] == 1.0
    assert modes["pairwise-logprob"]["generated_tokens_per_comparison"] == 2.0
    assert modes["pairwise-logprob"]["prompt_tokens_per_comparison"] > 100


def test_judge_eval_debiasing_is_the_mean_of_the_two_single_order_calls(judged):
    """Zero position bias, checked as it is built: both presentations of a probe make the same
    two single-order calls, so the debiased P(better) is, in either presentation, the mean of
    the baseline's two values (up to batch noise); text verdicts are identical; rubric scores
    do not see the order. Probe 0 is also item 0 of the judge cases, whose calls are stored."""
    modes, tol = judged["eval"]["modes"], batch_tolerance()
    single = modes["single-order"]["p_better"]
    for (a, b), (s_a, s_b) in zip(modes["pairwise-logprob"]["p_better"], single, strict=True):
        assert a == pytest.approx(b, abs=tol)  # the swapped presentation mirrors the first
        if 0.5 not in (s_a, s_b):  # ½ exactly: a call without label mass, no value to average
            assert a == pytest.approx((s_a + s_b) / 2, abs=tol)
    for a, b in modes["pairwise-text"]["p_better"]:
        assert a == b and a in (0.0, 0.5, 1.0)
    for a, b in modes["rubric"]["p_better"]:
        assert a == pytest.approx(b, abs=tol)
    stored = judged["cases"]["logprob"]["records"][0]  # answers 0, 1: probe 0's better, worse
    p_first = {(j["i"], j["j"]): j["p_first"] for j in stored["judgments"]}
    assert single[0][0] == pytest.approx(p_first[(0, 1)], abs=tol)  # better shown first
    assert single[0][1] == pytest.approx(1.0 - p_first[(1, 0)], abs=tol)  # worse shown first
    debiased = 0.5 * (p_first[(0, 1)] + 1.0 - p_first[(1, 0)])
    assert modes["pairwise-logprob"]["p_better"][0] == pytest.approx([debiased] * 2, abs=tol)
    rubric = judged["cases"]["rubric"]
    s = {j["i"]: j["score"] for j in rubric["records"][0]["judgments"]}
    if None not in (s[0], s[1]):  # both answers scored (a digit read can lack label mass)
        gap = (s[0] - s[1]) / rubric["config"]["rubric_scale"]
        p = 1 / (1 + math.exp(-gap))
        assert modes["rubric"]["p_better"][0][0] == pytest.approx(p, abs=tol)


def test_judge_eval_agreement_between_modes_is_recounted(judged):
    """Agreement of two different modes: the share of probes on which their verdicts match,
    read from each mode's P(better) with the better answer shown first."""
    result = judged["eval"]
    first = {m: [side(a) for a, _ in r["p_better"]] for m, r in result["modes"].items()}
    assert len(first) == 4
    for a, b in itertools.permutations(first, 2):
        same = [x == y for x, y in zip(first[a], first[b], strict=True)]
        assert result["agreement"][a][b] == pytest.approx(sum(same) / len(same)), (a, b)


def test_judge_eval_command_prints_the_table_and_writes_json(tmp_path):
    report = tmp_path / "eval.json"
    proc = run_sao(
        "judge-eval", "--engine", "hf", "--limit", "3", "--modes", "single-order,rubric",
        "--json", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "judge-eval: 3 probes, smollm2-135m-instruct on hf" in proc.stdout
    result = json.loads(report.read_text())
    fitted = result["modes"]["rubric"]["rubric_scale_fit"]
    assert fitted is None or "judge.rubric_scale fitted on these probes" in proc.stdout
    assert result["probes"] == 3 and list(result["modes"]) == ["single-order", "rubric"]
    for mode, r in result["modes"].items():  # recounted from the raw values, not assumed 0
        flips = [side(a) != side(b) for a, b in r["p_better"]]
        assert r["position_bias_rate"] == pytest.approx(sum(flips) / len(flips)), mode
