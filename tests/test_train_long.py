"""`sao train` killed mid-training and resumed, and its checkpoint generating on vLLM (make
test-long: each training step here writes a resumable checkpoint)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from sao.store import read_manifest, read_records
from tests.conftest import requires, run_sao
from tests.test_train import lineage, sao_train, write_train

pytestmark = pytest.mark.long


@requires("vllm")
def test_a_killed_training_resumes_to_the_same_weights(pairs_run, tmp_path, tiny_config):
    # LoRA: a checkpoint holds the adapter and its optimizer state, not 1.6 GB of full model
    config = write_train(tmp_path / "t.yaml", max_steps=2, save_steps=1, lora={"r": 4, "alpha": 8})
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    proc = sao_train(pairs_run, whole, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = sao_train(pairs_run, cut, config, env={"SAO_FAILPOINT": "kill@saved:1"})
    assert proc.returncode == -9
    assert not cut.exists() and (tmp_path / ".cut.train" / "checkpoint-1").is_dir()
    proc = sao_train(pairs_run, cut, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from checkpoint-1" in proc.stdout
    assert lineage(cut)["resumed_from"] == "checkpoint-1"
    printed = proc.stdout + proc.stderr  # TRL prints each logged step as it trains
    assert printed.count("'loss':") == 1  # only the step after the checkpoint ran again
    steps = [e["step"] for e in lineage(cut)["log_history"] if "loss" in e]
    assert steps == [1, 2]  # the history carries on from the checkpoint's
    a, b = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    # the same command once more does nothing; other settings are refused, the folder kept
    proc = sao_train(pairs_run, cut, config)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
    before = (cut / "model.safetensors").read_bytes()
    other = write_train(
        tmp_path / "o.yaml", max_steps=2, save_steps=1, learning_rate=2e-5, lora={"r": 4}
    )
    proc = sao_train(pairs_run, cut, other)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--overwrite" in proc.stderr
    assert (cut / "model.safetensors").read_bytes() == before
    # the resumed checkpoint is a model `sao generate` samples from on vLLM
    run = tmp_path / "run"
    proc = run_sao(
        "generate", "-c", str(tiny_config), "--engine", "vllm", "--model", str(cut),
        "--personas", "2", "--out", str(run),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_manifest(run)["model"]["path"] == str(cut.resolve())
    assert read_records(run).num_rows >= 1
