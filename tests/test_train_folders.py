"""The checkpoint folder's bookkeeping, on real folders: which TRL checkpoint resumes, when an
interrupted training's work folder is kept or refused, and a replaced folder never lost."""

from __future__ import annotations

import json

import pytest

from sao.errors import SaoError
from sao.store import swap_in
from sao.training.checkpoint import claim_work_folder, last_checkpoint, work_folder

SETTINGS = {"data": {"config_hash": "abc"}, "train": {"algo": "dpo", "learning_rate": 1e-6}}


def checkpoint(work, step: int, complete: bool = True):
    folder = work / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    if complete:  # TRL writes its trainer state last
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_the_newest_complete_checkpoint_resumes_and_a_half_written_one_goes(tmp_path):
    work = tmp_path / ".ckpt.train"
    checkpoint(work, 2)
    checkpoint(work, 10)
    checkpoint(work, 12, complete=False)  # a kill while TRL was saving it
    assert last_checkpoint(work) == str(work / "checkpoint-10")  # 10, not 2: by step, not name
    assert not (work / "checkpoint-12").exists()
    assert last_checkpoint(tmp_path / "none") is None


def test_an_interrupted_training_with_other_settings_is_refused_until_overwrite(tmp_path):
    out = tmp_path / "ckpt"
    work = claim_work_folder(out, SETTINGS, overwrite=False)
    assert work == work_folder(out) and json.loads((work / "sao_settings.json").read_text())
    checkpoint(work, 1)
    assert claim_work_folder(out, SETTINGS, overwrite=False) == work  # same settings: resumes
    assert (work / "checkpoint-1").is_dir()
    other = {**SETTINGS, "train": {"algo": "dpo", "learning_rate": 2e-6}}
    with pytest.raises(SaoError, match=r"train\.learning_rate"):
        claim_work_folder(out, other, overwrite=False)
    assert (work / "checkpoint-1").is_dir()  # refused, kept
    claim_work_folder(out, other, overwrite=True)
    assert not (work / "checkpoint-1").exists()
    assert json.loads((work / "sao_settings.json").read_text()) == other


def test_a_start_that_failed_before_any_checkpoint_never_blocks_the_next(tmp_path):
    out = tmp_path / "ckpt"
    claim_work_folder(out, SETTINGS, overwrite=False)  # then it failed: no checkpoint
    other = {**SETTINGS, "train": {"algo": "kto"}}
    work = claim_work_folder(out, other, overwrite=False)
    assert json.loads((work / "sao_settings.json").read_text()) == other


def test_swap_in_replaces_a_folder_and_puts_it_back_when_the_rename_fails(tmp_path):
    out, staging = tmp_path / "ckpt", tmp_path / ".ckpt.new"
    out.mkdir()
    (out / "model.safetensors").write_text("old")
    staging.mkdir()
    (staging / "model.safetensors").write_text("new")
    swap_in(staging, out)
    assert (out / "model.safetensors").read_text() == "new" and not staging.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # the old one moved aside, then gone
    with pytest.raises(OSError):
        swap_in(tmp_path / ".vanished", out)  # the rename fails
    assert (out / "model.safetensors").read_text() == "new"  # the folder that was there stays
