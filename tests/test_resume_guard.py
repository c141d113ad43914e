"""The resume guard: a different config is refused by name; --overwrite and --extend."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from sao.cli import app
from sao.personas import load_personas, sample_personas
from sao.records import shard_name
from sao.store import read_manifest, read_records
from sao.verify import verify
from tests.conftest import TINY, run_sao

pytestmark = pytest.mark.slow


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(out, tiny_config, *flags: str) -> str:
    """Run `sao generate` in process into `out`; it must fail in one line and change nothing."""
    before = snapshot(out)
    args = ["generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(out), *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert snapshot(out) == before
    return lines[0]


def test_a_different_config_is_refused_naming_the_keys(run_copy, tiny_config):
    line = refused(run_copy, tiny_config, "--seed", "12", "-k", "2")
    assert "(responses.samples, seed differ)" in line
    assert "--overwrite" in line
    line = refused(run_copy, tiny_config, "-n", "6")
    assert "(personas.count differ (--extend adds them))" in line


def test_extend_refuses_anything_but_more_personas(run_copy, tiny_config):
    assert "only adds personas, but seed differ" in refused(
        run_copy, tiny_config, "-n", "6", "--seed", "3", "--extend"
    )
    assert "more than the 4 personas" in refused(run_copy, tiny_config, "-n", "2", "--extend")
    assert "exclude each other" in refused(run_copy, tiny_config, "--overwrite", "--extend")
    manifest = read_manifest(run_copy)
    manifest["status"] = "running"
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    assert "is unfinished" in refused(run_copy, tiny_config, "-n", "6", "--extend")


def test_extend_adds_new_shards_only(run_copy, tiny_config):
    before = {name: (run_copy / name).read_bytes() for name in (shard_name(0), shard_name(1))}
    args = ("generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(run_copy))
    proc = run_sao(*args, "-n", "5", "--extend")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming: 2 of 3 shards committed" in proc.stderr
    for name, data in before.items():
        assert (run_copy / name).read_bytes() == data
    manifest = read_manifest(run_copy)
    assert manifest["segments"] == [4, 1]
    assert [s["index"] for s in manifest["shards"]] == [0, 1, 2]
    assert [s["stats"]["personas"] for s in manifest["shards"]] == [2, 2, 1]
    assert manifest["config"]["personas"]["count"] == 5
    assert manifest["status"] == "complete"
    assert manifest["totals"]["personas"] == 5
    assert verify(run_copy)[0] == []
    expected = [p.id for p in sample_personas(load_personas("bundled"), 5, TINY["seed"])]
    records = read_records(run_copy).to_pylist()
    kept = [r["persona_id"] for r in records]
    assert kept == [p for p in expected if p in kept]  # in sampling order, none twice
    for r in records:  # the first four personas are the old run's, the fifth is new
        assert r["persona_id"] in (expected[:4] if r["shard"] < 2 else expected[4:])
    # the same command again is a finished run: nothing to do, nothing changed
    again = snapshot(run_copy)
    rerun = run_sao(*args, "-n", "5", "--extend")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {k: v for k, v in snapshot(run_copy).items() if k != "manifest.json"} == {
        k: v for k, v in again.items() if k != "manifest.json"
    }


def test_overwrite_replaces_the_run_and_keeps_other_files(run_copy, tmp_path):
    (run_copy / "report.json").write_text("{}")
    (run_copy / "notes.txt").write_text("mine")
    config = tmp_path / "small.yaml"
    small = {**TINY, "personas": {"count": 1}, "responses": {"samples": 2, "max_tokens": 16}}
    config.write_text(yaml.safe_dump(small))
    proc = run_sao(
        "generate", "-c", str(config), "--engine", "hf", "--out", str(run_copy), "--overwrite"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(run_copy)
    assert manifest["config"]["personas"]["count"] == 1
    assert [s["index"] for s in manifest["shards"]] == [0]
    assert not (run_copy / shard_name(1)).exists()
    assert not (run_copy / "report.json").exists()
    assert (run_copy / "notes.txt").read_text() == "mine"
    assert verify(run_copy)[0] == []
