"""`sao generate` end to end on the embedded model through the transformers engine."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import yaml

from sao.records import shard_name
from sao.store import read_manifest
from sao.verify import verify
from tests.conftest import SAO, TINY, run_sao
from tests.dtypes import batch_tolerance
from tests.e2e_checks import (
    check_records,
    check_reversal,
    check_run_diagnostics,
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


def test_every_answer_has_its_own_seed_and_row(run):
    # hf draws a micro-batch from one generator: (batch seed, row) names each answer's draw
    out, _ = run
    records = load_records(out).to_list()
    draws = [(r["seed"], r["seed_row"]) for rec in records for r in rec["responses"]]
    assert len(draws) == len(records) * K and None not in {x for d in draws for x in d}
    assert len(set(draws)) == len(draws)
    config = read_manifest(out)["config"]
    batch = config["engine"]["batch_size"] * K  # rows of one generate call
    assert all(0 <= row < batch for _, row in draws)


@pytest.mark.long
def test_engine_faults_stop_cleanly_then_a_rerun_regenerates_a_lost_shard(run, tmp_path):
    out, _ = run
    config = tmp_path / "retry.yaml"  # retries do not change the config hash
    config.write_text(
        yaml.safe_dump({**TINY, "engine": {**TINY["engine"], "retries": 1, "retry_backoff_s": 0.2}})
    )
    shards = sorted(out.glob("shard-*.arrow"))
    assert len(shards) == 2
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in shards}
    (out / shard_name(1)).unlink()  # as if the run had died before shard 1 was committed
    args = ("generate", "-c", str(config), "--engine", "hf", "--out", str(out))

    failing = run_sao(*args, env={"SAO_FAILPOINT": "fail@start:1"})  # fails every time
    assert failing.returncode == 3, failing.stderr[-3000:]
    assert "Traceback" not in failing.stderr
    assert "retry 1 of 1 in 0.2 s" in failing.stderr
    assert failing.stderr.strip().splitlines()[-1] == (
        "error: engine failed on shard 1 after 2 attempts (InjectedFault: injected fault at "
        "start:1); 1 committed shards are kept, rerun the same command to resume"
    )
    assert (out / shard_name(0)).stat().st_mtime_ns == before[shard_name(0)][0]

    refused = run_sao(*args, env={"SAO_FAILPOINT": "refuse@responses:1"})  # never retried
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr and "retry" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: the engine refused a request and would again (injected refusal at responses:1); "
        "committed shards are kept: fix the setting and rerun the same command"
    )
    assert (out / shard_name(0)).stat().st_mtime_ns == before[shard_name(0)][0]
    assert not (out / shard_name(1)).exists()

    proc = run_sao(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming: 1 of 2 shards committed" in proc.stderr
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("shard-*.arrow")}
    assert after[shard_name(0)] == before[shard_name(0)]  # untouched
    assert after[shard_name(1)][1] == before[shard_name(1)][1]  # same bytes, rewritten


def test_reversing_responses_reverses_the_matrix(run):
    out, _ = run
    check_reversal(rejudge("hf", out), K, tol=batch_tolerance())  # reversed: another batch


@pytest.mark.long
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_exits_with_a_resume_command(tiny_config, tmp_path, sig, code):
    out = tmp_path / "out"
    args = [SAO, "generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(out)]
    proc = subprocess.Popen(
        args,
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
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    name = signal.Signals(sig).name
    resume = f"sao generate -c {tiny_config} --engine hf --out {out}"
    last = err.strip().splitlines()[-1]
    assert last == f"interrupted ({name}): committed shards are kept; resume with: {resume}"
    assert read_manifest(out)["status"] == "running"
    assert verify(out)[0] == []


def test_preview_shows_the_first_shard_and_writes_nothing(run, tiny_config, tmp_path):
    # the preview of a run's first shard (same personas, seeds and batches) is that shard
    out, _ = run
    never = tmp_path / "never"
    args = ("generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(never))
    proc = run_sao(*args, "--preview", str(TINY["output"]["shard_size"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not never.exists()
    shown = " ".join(proc.stdout.split())
    first = [r for r in load_records(out).to_list() if r["shard"] == 0]
    assert first and f"{len(first)} records previewed; nothing was written" in shown
    for rec in first:
        assert " ".join(rec["prompt"][-1]["content"].split()) in shown
        for answer, score in zip(rec["responses"], rec["scores"], strict=True):
            assert " ".join(answer["text"].split()) in shown
            assert f"score {score:.3f}" in shown
