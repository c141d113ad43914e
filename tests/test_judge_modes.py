"""Every judge mode on the embedded model through the real hf and vLLM engines."""

from __future__ import annotations

import importlib.util
import json

import pytest

from sao.judge_eval import verdict
from tests.conftest import run_sao
from tests.e2e_checks import script_json
from tests.judge_checks import check_judge

pytestmark = pytest.mark.slow
ENGINES = [
    "hf",
    pytest.param(
        "vllm",
        marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="no vLLM"),
    ),
]


@pytest.fixture(scope="module", params=ENGINES)
def judged(request) -> dict:
    # hf generates text slowly on 2 cores: two probe kinds there, all four on vLLM
    probes = "2" if request.param == "hf" else "4"
    return script_json("tests/judge_modes.py", request.param, probes)


def test_every_mode_holds_matrix_invariants_and_recountable_diagnostics(judged):
    for name, case in judged["cases"].items():
        for rec in case["records"]:
            try:
                check_judge(rec, case["config"])
            except AssertionError as exc:
                raise AssertionError(f"case {name}: {exc}") from exc


def test_engine_counted_tokens_match_the_stored_judgments(judged):
    # the engine's own count (vLLM: tokens it returned) against what the records say
    for name, case in judged["cases"].items():
        stored = sum(rec["judge_stats"]["generated_tokens"] for rec in case["records"])
        assert case["engine_generated_tokens"] == stored, name
    logprob = judged["cases"]["logprob"]
    calls = sum(rec["judge_stats"]["calls"] for rec in logprob["records"])
    assert logprob["engine_generated_tokens"] == calls  # one generated token per order


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
            assert rec["pref_matrix"][i][j] == pytest.approx(full["pref_matrix"][i][j], abs=2e-3)


def test_reversing_the_answers_reverses_the_matrix(judged):
    # P from both orders is symmetric in position: answer a of the reversed list is k-1-a
    for forward, backward, full in zip(
        judged["reversal"]["forward"],
        judged["reversal"]["reversed"],
        judged["cases"]["logprob"]["records"],
        strict=True,
    ):
        k = len(forward)
        for a in range(k):
            for b in range(k):
                assert backward[a][b] == pytest.approx(forward[k - 1 - a][k - 1 - b], abs=2e-3)
                assert forward[a][b] == pytest.approx(full["pref_matrix"][a][b], abs=2e-3)


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


def test_judge_eval_debiased_modes_have_no_position_bias_and_baseline_its_real_rate(judged):
    result = judged["eval"]
    modes = result["modes"]
    for mode in ("pairwise-logprob", "pairwise-text", "rubric"):
        assert modes[mode]["position_bias_rate"] == 0.0, mode
    single = modes["single-order"]
    flips = [verdict(a) != verdict(b) for a, b in single["p_better"]]
    assert single["position_bias_rate"] == pytest.approx(sum(flips) / len(flips))
    for mode, r in modes.items():
        hits = [verdict(p) == "better" for pair in r["p_better"] for p in pair]
        assert r["accuracy"] == pytest.approx(sum(hits) / len(hits)), mode
    assert single["generated_tokens_per_comparison"] == 1.0
    assert modes["pairwise-logprob"]["generated_tokens_per_comparison"] == 2.0
    assert modes["pairwise-logprob"]["prompt_tokens_per_comparison"] > 100
    assert all(result["agreement"][m][m] == 1.0 for m in modes)


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
    assert result["modes"]["rubric"]["position_bias_rate"] == 0.0
