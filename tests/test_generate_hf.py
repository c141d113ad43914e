"""`sao generate` end to end on the embedded model through the transformers engine."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from sao.records import shard_name
from sao.store import read_manifest, read_records
from tests.conftest import SAO, TINY, run_sao
from tests.e2e_checks import (
    check_records,
    check_reversal,
    check_run_diagnostics,
    generate_tiny,
    generate_with,
    load_records,
    rejudge,
)

pytestmark = pytest.mark.slow
K = TINY["responses"]["samples"]


@pytest.fixture(scope="module")
def run(hf_run):
    return hf_run


def test_prints_where_the_data_is(run):
    out, proc = run
    assert f"data: {out}" in proc.stdout
    assert "records (K=3)" in proc.stdout


def test_records_load_with_datasets_and_hold_invariants(run):
    out, _ = run
    ds = load_records(out)
    manifest = read_manifest(out)
    check_records(ds.to_list(), K, manifest["config"])
    check_run_diagnostics(manifest, ds.to_list())
    assert manifest["status"] == "complete"
    assert sum(s["rows"] for s in manifest["shards"]) == ds.num_rows
    assert manifest["totals"]["records"] == ds.num_rows
    assert manifest["engine"]["name"] == "hf"
    assert set(manifest["templates"]) == {"persona_prompt.j2", "judge_pairwise.j2"}
    assert manifest["totals"]["tokens"]["responses"] > 0


def test_text_judge_with_a_pairs_budget_and_consistent_pairs(tmp_path):
    config = generate_with(
        "hf",
        tmp_path / "out",
        tmp_path,
        responses={"samples": 4, "max_tokens": 40},
        judge={"mode": "pairwise-text", "opponents": 1, "max_tokens": 8},
        pairs={"strategy": "consistent-only", "min_margin": 0.0},
    )
    records = read_records(tmp_path / "out").to_pylist()
    check_records(records, 4, config)
    check_run_diagnostics(read_manifest(tmp_path / "out"), records)
    for rec in records:
        assert rec["judge_stats"]["calls"] == 8  # the ring: 4 of 6 pairs, both orders
        assert rec["judge_stats"]["estimated_cells"] >= 2


def test_rerun_resumes_and_regenerates_a_lost_shard_identically(run, tiny_config):
    out, _ = run
    shards = sorted(out.glob("shard-*.arrow"))
    assert len(shards) == 2
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in shards}
    (out / shard_name(1)).unlink()  # as if the run had died before shard 1 was committed
    proc = run_sao("generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming: 1 of 2 shards committed" in proc.stderr
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("shard-*.arrow")}
    assert after[shard_name(0)] == before[shard_name(0)]  # untouched
    assert after[shard_name(1)][1] == before[shard_name(1)][1]  # same bytes, rewritten


def test_same_seed_gives_identical_records(run, tiny_config, tmp_path):
    out, _ = run
    generate_tiny("hf", tmp_path, tiny_config)
    assert read_records(tmp_path).to_pylist() == read_records(out).to_pylist()


def test_reversing_responses_reverses_the_matrix(run):
    out, _ = run
    check_reversal(rejudge("hf", out), K, tol=1e-3)


def test_ctrl_c_exits_130_with_a_resume_hint(tiny_config, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [SAO, "generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell that started pytest in the background may have SIGINT ignored: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # inside model loading or the first stage
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: committed shards are kept"), err[-3000:]
    assert read_manifest(out)["status"] == "running"
