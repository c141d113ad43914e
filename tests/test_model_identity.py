"""A model is known by what its folder holds, not by its path: digests, their cache, resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from sao import model_digest
from sao.config import EngineConfig, RunConfig
from sao.engines import make_engine
from sao.errors import SaoError
from sao.model_digest import folder_digest
from sao.models import resolve_model
from sao.provenance import model_identity, resumed_revision
from sao.store import Store, read_manifest
from tests.conftest import TINY, run_sao


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private sao cache, so the digest cache starts empty."""
    monkeypatch.setenv("SAO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_folder_is_hashed_once_then_looked_up_until_a_file_changes(tmp_path, cache, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    weights = folder / "model.safetensors"
    weights.write_bytes(os.urandom(1 << 26))  # 64 MiB
    (folder / "README.md").write_text("not part of the model")
    hashed = []
    real = model_digest.sha256_file
    monkeypatch.setattr(model_digest, "sha256_file", lambda p: hashed.append(p.name) or real(p))

    for beside in ("checkpoint-500", "original", "runs"):  # a trainer's leftovers, Meta's .pth
        (folder / beside).mkdir()
        (folder / beside / "model.safetensors").write_bytes(b"not loaded from here")
    first = folder_digest(folder)
    assert sorted(hashed) == ["config.json", "model.safetensors"]  # README is not the model
    again = folder_digest(folder)
    assert again == first and len(hashed) == 2  # looked up: no file read again

    (folder / "README.md").write_text("edited")
    (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"a later step")
    assert folder_digest(folder) == first and len(hashed) == 2
    with weights.open("r+b") as f:  # one byte rewritten in place: same size, new mtime
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert folder_digest(folder) != first and len(hashed) == 4


@pytest.mark.slow
def test_weights_changed_in_place_refuse_the_resume(tmp_path, monkeypatch):
    # a local copy of the embedded model, used as a training round would use its checkpoint
    source = resolve_model("smollm2-135m-instruct").path
    monkeypatch.setenv("SAO_CACHE", str(tmp_path / "cache"))  # digests start uncached
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    small = {
        **TINY,
        "model": str(folder),
        "personas": {"count": 1},
        "responses": {"samples": 2, "max_tokens": 8},
        "prompts": {"candidates": 1, "max_tokens": 24},
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small))
    out = tmp_path / "out"
    args = ("generate", "-c", str(config), "--engine", "hf", "--out", str(out))
    first = run_sao(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    model = read_manifest(out)["model"]
    assert model["source"] == "local" and model["digest"] == folder_digest(folder)
    assert run_sao(*args).returncode == 0  # unchanged: the finished run resumes (nothing to do)

    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:  # a checkpoint overwritten in place, path unchanged
        f.seek(-4096, os.SEEK_END)
        f.write(os.urandom(4096))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run_sao(*args)
    assert refused.returncode == 2, refused.stderr[-3000:]
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "different model weights" in line, line
    assert "--overwrite" in line and "Traceback" not in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def fake_hub(cache: Path, repo: str, files: Path | None = None, marker: int = 0) -> str:
    """A Hugging Face cache holding `repo` at a new commit (its files linked from `files`, or a
    bare config; config.json marked with `marker`), with refs/main pointing at it; returns the
    commit."""
    commit = os.urandom(20).hex()
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    config = {"model_type": "llama"}
    if files is not None:
        for path in files.iterdir():
            if path.name != "config.json":
                (snapshot / path.name).symlink_to(path)
        config = json.loads((files / "config.json").read_text())
    (snapshot / "config.json").write_text(json.dumps({**config, "sao_marker": marker}))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return commit


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An offline hub cache (the real huggingface_hub lookups, no network)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_a_hub_id_is_pinned_to_the_commit_it_resolves_to(hub, tmp_path):
    first = fake_hub(hub, "sao-test/tiny")
    model = resolve_model("sao-test/tiny")
    assert (model.path, model.source, model.revision) == ("sao-test/tiny", "hub", first)
    identity = model_identity(model)
    assert identity["revision"] == first and "digest" not in identity
    cfg = RunConfig()
    header = {
        "config": cfg.data_dict(),
        "config_hash": cfg.data_hash(),
        "engine": {"name": "hf"},
        "templates": {},
        "model": identity,
    }
    Store.open(tmp_path / "run", header).close()

    moved = fake_hub(hub, "sao-test/tiny", marker=1)  # the hub's main moved on
    assert resolve_model("sao-test/tiny").revision == moved
    assert resolve_model(f"sao-test/tiny@{first}").revision == first  # pinned by hand
    later = {**header, "model": model_identity(resolve_model("sao-test/tiny"))}
    with pytest.raises(SaoError, match="different model revision"):
        Store.open(tmp_path / "run", later)
    # a resume of the same command loads the commit its run started with, not the new head
    resumed = resumed_revision(resolve_model("sao-test/tiny"), str(tmp_path / "run"), "resume")
    assert resumed.revision == first
    Store.open(tmp_path / "run", {**header, "model": model_identity(resumed)}).close()
    fresh = resumed_revision(resolve_model("sao-test/tiny"), str(tmp_path / "run"), "overwrite")
    assert fresh.revision == moved


@pytest.mark.slow
def test_the_engine_loads_the_pinned_commit_not_the_head(hub):
    embedded = Path(resolve_model("smollm2-135m-instruct").path)
    pinned = fake_hub(hub, "sao-test/smol", embedded, marker=1)
    head = fake_hub(hub, "sao-test/smol", embedded, marker=2)  # main now points here
    assert resolve_model("sao-test/smol").revision == head
    model = resolve_model(f"sao-test/smol@{pinned}")
    engine = make_engine(EngineConfig(name="hf"), model.path, 0, model.revision)
    assert engine.model.config.sao_marker == 1  # the pinned commit's config, not main's
    engine.close()
