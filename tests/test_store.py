"""Shard commits, the manifest, resume bookkeeping and the resume guard."""

import json
import os
import stat

import datasets
import pytest

from sao.config import RunConfig
from sao.errors import SaoError
from sao.hashing import sha256_file
from sao.records import RECORD_SCHEMA, SCHEMA_VERSION, shard_name
from sao.seeds import SEED_SCHEME
from sao.store import Store, read_records, write_checked


def header(cfg: RunConfig, engine: str = "hf", pool: str = "p1") -> dict:
    return {
        "config": cfg.data_dict(),
        "config_hash": cfg.data_hash(),
        "engine": {"name": engine},
        "model": {"name": "m", "path": "/models/m", "source": "local"},
        "templates": {"t.j2": "abc"},
        "personas": {"pool_sha256": pool, "sampling": "s/1"},
    }


def record(i: int, shard: int) -> dict:
    return {
        "record_id": f"r{i}",
        "shard": shard,
        "persona_id": f"p{i}",
        "persona": "A tester.",
        "prompt": [{"role": "user", "content": f"question {i}"}],
        "responses": [
            {"text": t, "finish_reason": "stop", "num_tokens": 1, "seed": 1} for t in "ab"
        ],
        "pref_matrix": [[0.5, 0.75], [0.25, 0.5]],
        "scores": [0.625, 0.375],
        "judgments": [{"i": 0, "j": 1, "order": "forward", "p_first": 0.8, "raw": "{}"}],
        "pairs": [{"chosen": 0, "rejected": 1, "margin": 0.25, "strategy": "best-worst"}],
        "flags": [],
    }


def test_commit_is_readable_by_datasets_and_listed(tmp_path):
    with Store.open(tmp_path, header(RunConfig())) as store:
        entry = store.commit(0, [record(0, 0), record(1, 0)], {"records": 2})
    assert entry["rows"] == 2
    assert sha256_file(tmp_path / shard_name(0)) == entry["sha256"]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    ds = datasets.load_dataset("arrow", data_files=str(tmp_path / "*.arrow"), split="train")
    assert ds.num_rows == 2
    assert ds.features.arrow_schema.names == RECORD_SCHEMA.names
    assert read_records(tmp_path).to_pylist()[1]["record_id"] == "r1"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["shards"][0]["file"] == shard_name(0)


def test_reopen_keeps_committed_and_detects_damage(tmp_path):
    cfg = RunConfig()
    with Store.open(tmp_path, header(cfg)) as store:
        store.commit(0, [record(0, 0)], {})
        store.commit(1, [record(1, 1)], {})
    (tmp_path / ".shard-00002.arrow.x1.tmp").write_bytes(b"half")  # a killed write
    with Store.open(tmp_path, header(cfg)) as store:
        assert store.committed() == {0, 1}
    assert not list(tmp_path.glob(".*.tmp"))
    (tmp_path / shard_name(1)).write_bytes(b"garbage")
    with Store.open(tmp_path, header(cfg)) as store:
        assert store.committed() == {0}


def test_resume_guard_names_differing_keys_and_setup(tmp_path):
    Store.open(tmp_path, header(RunConfig())).close()
    with pytest.raises(SaoError, match=r"\(responses\.samples differ\)"):
        Store.open(tmp_path, header(RunConfig(responses={"samples": 3})))
    with pytest.raises(SaoError, match=r"different engine, persona pool; use --overwrite"):
        Store.open(tmp_path, header(RunConfig(), engine="vllm", pool="p2"))
    Store.open(tmp_path, header(RunConfig())).close()  # refusals changed nothing


def test_resume_refuses_another_seed_scheme_weights_or_package_versions(tmp_path):
    start = {
        **header(RunConfig()),
        "seeding": SEED_SCHEME,
        "packages": {"torch": "2.13.0", "transformers": "5.1.0"},
    }
    start["model"] = {**start["model"], "digest": "d1"}
    before_issue_14 = {k: v for k, v in start.items() if k != "seeding"}  # an older sao's run
    Store.open(tmp_path / "old", before_issue_14).close()
    with pytest.raises(SaoError, match=r"another seed scheme \(request i seeded base \+ i"):
        Store.open(tmp_path / "old", start)
    Store.open(tmp_path, start).close()
    moved = {**start, "packages": {"torch": "2.13.0", "transformers": "5.2.0"}}
    with pytest.raises(SaoError, match=r"package versions \(transformers 5\.1\.0 → 5\.2\.0\)"):
        Store.open(tmp_path, moved)
    rewritten = {**start, "model": {**start["model"], "digest": "d2"}}
    with pytest.raises(SaoError, match=r"different model weights; use --overwrite"):
        Store.open(tmp_path, rewritten)
    served = {**start, "model": {**start["model"], "served": "m", "root": "/other"}}
    with pytest.raises(SaoError, match=r"different served model"):
        Store.open(tmp_path, served)
    other_cpu = {**start, "engine": {**start["engine"], "dtype": "bfloat16"}}  # `auto` elsewhere
    with pytest.raises(SaoError, match=r"different dtype; use --overwrite"):
        Store.open(tmp_path, other_cpu)
    judge = {"name": "j", "path": "/j", "source": "local", "digest": "j1"}
    Store.open(tmp_path / "judged", {**start, "judge_model": judge}).close()
    retrained = {**start, "judge_model": {**judge, "digest": "j2"}}
    with pytest.raises(SaoError, match=r"different judge model weights; use --overwrite"):
        Store.open(tmp_path / "judged", retrained)
    with pytest.raises(SaoError, match=rf"schema version 3, this version writes {SCHEMA_VERSION}"):
        old_schema = tmp_path / "v3"
        Store.open(old_schema, start).close()
        manifest = json.loads((old_schema / "manifest.json").read_text())
        (old_schema / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 3}))
        Store.open(old_schema, start)
    Store.open(tmp_path, start).close()  # refusals changed nothing


def test_one_run_at_a_time_per_folder(tmp_path):
    with (
        Store.open(tmp_path, header(RunConfig())),
        pytest.raises(SaoError, match="another sao generate is writing to"),
    ):
        Store.open(tmp_path, header(RunConfig()))
    Store.open(tmp_path, header(RunConfig())).close()  # released


@pytest.mark.parametrize(
    "manifest",
    [{}, [], {"config": {}}, {"config": {"personas": 5}}, {"config": {"personas": {"count": 2}}}],
)
def test_a_manifest_of_the_wrong_shape_is_one_line(tmp_path, manifest):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SaoError, match="not a sao manifest this version can resume"):
        Store.open(tmp_path, header(RunConfig()))


def test_a_failed_write_is_one_line(tmp_path, monkeypatch):
    with Store.open(tmp_path, header(RunConfig())) as store:

        def full(path, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("sao.store.write_atomic", full)
        with pytest.raises(SaoError, match=r"cannot write .*No space left on device"):
            store.commit(0, [record(0, 0)], {})


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SaoError, match="not writable"):
        Store.open(blocker / "out", header(RunConfig()))


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """A shard, a manifest or a report is readable as any file the user writes (the temp file
    `mkstemp` makes is private until it is renamed into place)."""
    before = os.umask(0o022)
    try:
        write_checked(tmp_path / "report.json", b"{}")
        plain = tmp_path / "plain"
        plain.write_bytes(b"{}")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644
