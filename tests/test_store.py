"""Shard commits, the manifest, resume bookkeeping and the resume guard."""

import json

import datasets
import pytest

from sao.config import RunConfig
from sao.errors import SaoError
from sao.records import RECORD_SCHEMA, shard_name
from sao.store import Store, read_records, sha256_file


def header(cfg: RunConfig) -> dict:
    return {"config": cfg.data_dict(), "config_hash": cfg.data_hash()}


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
    store = Store.open(tmp_path, header(RunConfig()))
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
    store = Store.open(tmp_path, header(cfg))
    store.commit(0, [record(0, 0)], {})
    store.commit(1, [record(1, 1)], {})
    assert Store.open(tmp_path, header(cfg)).committed() == {0, 1}
    (tmp_path / shard_name(1)).write_bytes(b"garbage")
    assert Store.open(tmp_path, header(cfg)).committed() == {0}


def test_resume_guard_names_differing_keys(tmp_path):
    Store.open(tmp_path, header(RunConfig()))
    with pytest.raises(SaoError, match=r"responses\.samples"):
        Store.open(tmp_path, header(RunConfig(responses={"samples": 3})))


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SaoError, match="not writable"):
        Store.open(blocker / "out", header(RunConfig()))
