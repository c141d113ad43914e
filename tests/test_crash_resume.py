"""Nothing lost: a real `sao generate` killed with SIGKILL again and again, resumed each time,
ends with exactly the records of an uninterrupted run.

The kills land at named points (`sao/failpoints.py`: the process SIGKILLs itself there) and
once at a moment chosen by the clock. The uninterrupted run is the shared `hf_run`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml

from sao.records import shard_name
from sao.store import read_manifest, read_records
from sao.verify import verify
from tests.conftest import SAO, TINY

pytestmark = [pytest.mark.slow, pytest.mark.long]

# (failpoints, shards the manifest lists after the kill); each run resumes the one before.
KILLS = [
    ("kill@opened", 0),
    ("clock", 0),
    ("kill@responses:0", 0),
    ("kill@written:0", 0),  # the shard file is in place, the manifest does not list it yet
    ("kill@judge:1", 1),
    ("raise@responses:1,kill@committed:1", 2),  # an engine error, retried, then the kill
]


def start(config, out, failpoint: str | None) -> subprocess.Popen:
    env = {**os.environ, "SAO_FAILPOINT": failpoint or ""}
    return subprocess.Popen(
        [SAO, "generate", "-c", str(config), "--engine", "hf", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def kill_by_the_clock(config, out) -> subprocess.Popen:
    """SIGKILL two seconds after the run rewrites its manifest: model loading or a stage."""
    before = (out / "manifest.json").stat().st_mtime_ns
    proc = start(config, out, None)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.json").stat().st_mtime_ns != before:
            time.sleep(2)
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    return proc


def test_sigkill_at_every_stage_then_resume_equals_an_uninterrupted_run(hf_run, tmp_path):
    reference, _ = hf_run
    config = tmp_path / "tiny.yaml"
    # retries and their back-off do not change the records, so the config hash is hf_run's
    config.write_text(
        yaml.safe_dump({**TINY, "engine": {**TINY["engine"], "retry_backoff_s": 0.1}})
    )
    out = tmp_path / "out"
    for failpoint, listed in KILLS:
        if failpoint == "clock":
            proc = kill_by_the_clock(config, out)
        else:
            proc = start(config, out, failpoint)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == -signal.SIGKILL, (failpoint, err[-3000:])
        manifest = read_manifest(out)
        assert manifest["status"] == "running", failpoint
        assert len(manifest["shards"]) == listed, failpoint
        assert not list(out.glob(".*.tmp")) or failpoint == "clock", failpoint
        problems, _ = verify(out)
        if failpoint == "kill@written:0":
            assert (out / shard_name(0)).is_file()
            assert problems == [f"{shard_name(0)}: shard file not listed in the manifest"]
        else:
            assert problems == [], (failpoint, problems)
        if failpoint.startswith("raise@"):
            assert "engine error on shard 1 (InjectedFault: injected fault at responses:1)" in err
            assert "retry 1 of 2" in err

    written = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.arrow")}
    proc = start(config, out, None)  # every shard is committed: it only marks the run complete
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.arrow")} == written
    assert verify(out)[0] == []
    assert read_manifest(out)["status"] == "complete"
    assert not list(out.glob(".*.tmp"))
    resumed, uninterrupted = read_records(out), read_records(reference)
    assert resumed.schema == uninterrupted.schema
    assert resumed.num_rows == uninterrupted.num_rows > 0
    for field in uninterrupted.schema.names:
        assert resumed[field].to_pylist() == uninterrupted[field].to_pylist(), field
    for name in (shard_name(0), shard_name(1)):
        assert (out / name).read_bytes() == (reference / name).read_bytes()
