"""`sao verify` on a real run: sound as written, and every kind of damage named in one line."""

from __future__ import annotations

import json
import shutil

import pytest

from sao.records import shard_name
from sao.verify import record_problems, verify
from tests.conftest import run_sao

pytestmark = pytest.mark.slow


def verdict(out) -> tuple[int, list[str]]:
    proc = run_sao("verify", str(out))
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc.returncode, proc.stdout.strip().splitlines()


def problems(out) -> list[str]:
    """The problems found, in process (the command line is tested on a flipped byte)."""
    found, _ = verify(out)
    return [f"problem: {p}" for p in found]


def test_a_sound_run_verifies(run_copy):
    code, lines = verdict(run_copy)
    manifest = json.loads((run_copy / "manifest.json").read_text())
    rows = sum(s["rows"] for s in manifest["shards"])
    assert code == 0 and lines == [f"ok: 2 shards, {rows} records in {run_copy}"]


def test_a_flipped_byte(run_copy):
    path = run_copy / shard_name(0)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, lines = verdict(run_copy)
    assert code == 1 and lines[-1].startswith("FAILED:") and str(run_copy) in lines[-1], lines
    assert any(shard_name(0) in line and "SHA-256" in line for line in lines[:-1]), lines
    assert all(line.startswith("problem: ") for line in lines[:-1]), lines


def test_a_truncated_shard(run_copy):
    path = run_copy / shard_name(1)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    found = problems(run_copy)
    assert any(shard_name(1) in p and "SHA-256" in p for p in found), found
    assert any(shard_name(1) in p and "not a readable Arrow stream" in p for p in found), found


def test_a_deleted_shard(run_copy):
    (run_copy / shard_name(1)).unlink()
    found = problems(run_copy)
    assert f"problem: {shard_name(1)}: missing" in found
    assert any("totals say" in p for p in found), found


def test_an_edited_manifest(run_copy):
    path = run_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["seed"] += 1
    manifest["shards"][0]["rows"] += 1
    path.write_text(json.dumps(manifest))
    found = problems(run_copy)
    assert any("config_hash" in p for p in found), found
    assert any(shard_name(0) in p and "the manifest says" in p for p in found), found


def test_an_unlisted_shard_and_an_unreadable_manifest(run_copy):
    shutil.copy(run_copy / shard_name(0), run_copy / shard_name(7))
    assert any(shard_name(7) in p and "not listed" in p for p in problems(run_copy))
    (run_copy / "manifest.json").write_text("{not json")
    assert len(problems(run_copy)) == 1


def test_matrix_invariants_by_hand():
    good = {
        "responses": [{}, {}],
        "pref_matrix": [[0.5, 0.8], [0.2, 0.5]],
        "scores": [0.65, 0.35],
        "pairs": [{"chosen": 0, "rejected": 1}],
    }
    assert list(record_problems(good)) == []
    bad = {**good, "pref_matrix": [[0.5, 0.8], [0.3, 0.6]], "pairs": [{"chosen": 1, "rejected": 1}]}
    found = list(record_problems(bad))
    assert any("P[1][1]" in p for p in found)
    assert any("P[0][1] + P[1][0]" in p for p in found)
    assert any("row means" in p for p in found)
    assert any("itself" in p for p in found)
    assert list(record_problems({**good, "pref_matrix": [[0.5]]})) == ["pref_matrix is not 2×2"]
    holes = {**good, "pref_matrix": [[0.5, None], [0.2, 0.5]]}
    assert list(record_problems(holes)) == ["pref_matrix or scores hold null cells"]
