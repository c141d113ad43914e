"""`sao train` on a real run of the embedded model, through the command line.

Each algorithm's first logged loss is checked against its closed form at π = π_ref (the
reference log-probs are precomputed from the starting policy, so every log-ratio is 0 at the
first step), recounted from the records; soft SPPO's loss and gradient against plain torch; a
checkpoint killed mid-training resumes to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sao.store import read_manifest, read_records
from tests.conftest import ROOT, run_sao

pytestmark = pytest.mark.slow
# The training runs here take about 5 minutes on 2 cores: they run in `make test-long`, which
# CI runs too, so that `make test` stays under 20 minutes. What is cheap stays in `make test`.
trains = pytest.mark.long

BETA = 0.1
BATCH = 2
BASE = {
    "learning_rate": 1e-5,
    "max_steps": 1,
    "batch_size": BATCH,
    "max_length": 1024,
    "save_steps": 1000,  # no resumable checkpoint (1.6 GB of writes each) but where tested
    "split_ratio": 0,
    "dtype": "float32",
    "warmup_ratio": 0,
    "beta": BETA,
}
PROBE = "model.layers.0.self_attn.q_proj.weight"


def write_train(path: Path, **over) -> Path:
    path.write_text(yaml.safe_dump({"train": {**BASE, **over}}))
    return path


def sao_train(run: Path, out: Path, config: Path, *extra: str, env=None):
    return run_sao("train", str(run), "--out", str(out), "-c", str(config), *extra, env=env)


def lineage(out: Path) -> dict:
    return json.loads((out / "sao_lineage.json").read_text())


def row_means(matrix: list[list[float]]) -> list[float]:
    return [sum(row) / len(row) for row in matrix]


def widest(record: dict) -> dict:
    return max(record["pairs"], key=lambda p: p["margin"])


def kto_labels(records: list[dict]) -> list[bool]:
    """Each answer's KTO label, for scores away from ½ (the run's min_margin is 0)."""
    scores = [s for r in records for s in row_means(r["pref_matrix"])]
    return [s > 0.5 for s in scores if abs(s - 0.5) > 1e-6]


def first_loss_terms(algo: str, records: list[dict]) -> list[float] | None:
    """Each row's loss at π = π_ref, from the records alone: the first step's loss is the mean
    over the rows of its batch (None: SimPO has no reference, so no closed form)."""
    if algo == "dpo":
        return [math.log(2)]  # -log σ(0)
    if algo == "ipo":
        return [(1 / (2 * BETA)) ** 2]  # (0 - 1/(2β))²
    if algo == "sppo-hard":
        return [2 * (0.5 / BETA) ** 2]  # (0 - ½/β)² + (0 + ½/β)²
    if algo == "sppo":
        terms = []
        for r in records:
            if r["pairs"]:
                means, pair = row_means(r["pref_matrix"]), widest(r)
                win, lose = means[pair["chosen"]], means[pair["rejected"]]
                terms.append(((win - 0.5) ** 2 + (lose - 0.5) ** 2) / (2 * BETA**2))
        return terms
    if algo == "kto":
        labels = kto_labels(records)
        good, bad = sum(labels), len(labels) - sum(labels)
        weight = round(bad / good, 2)  # desirable answers weighted back to balance
        return [0.5 * (weight if label else 1.0) for label in labels]  # 1 - σ(0), weighted
    return None


def batch_means(terms: list[float], size: int) -> list[float]:
    """The mean of every batch of `size` rows the first step could have drawn."""
    if len(set(terms)) == 1:
        return terms[:1]
    return [sum(c) / len(c) for c in itertools.combinations(terms, min(size, len(terms)))]


def expected_rows(algo: str, records: list[dict]) -> int:
    if algo == "kto":
        return len(kto_labels(records))
    if algo == "sppo":
        return sum(1 for r in records if r["pairs"])
    return sum(len(r["pairs"]) for r in records)


@trains
@pytest.mark.parametrize(
    "algo,lora",
    [("dpo", False), ("ipo", False), ("sppo-hard", False), ("sppo", False), ("kto", False),
     ("simpo", True)],
)  # fmt: skip
def test_every_algorithm_trains_from_its_closed_form_first_loss(pairs_run, tmp_path, algo, lora):
    from sao.training import TrainConfig, train

    records = read_records(pairs_run).to_pylist()
    extra = {"lora": {"r": 4, "alpha": 8}} if lora else {}
    if algo == "sppo":
        extra["split_ratio"] = 0.5  # a held-out split, evaluated once after training
    out = tmp_path / "ckpt"
    train(pairs_run, out, TrainConfig(**{**BASE, **extra, "algo": algo}))
    about = lineage(out)
    losses = [e["loss"] for e in about["log_history"] if "loss" in e]
    assert len(losses) == 1 and math.isfinite(losses[0])
    terms = first_loss_terms(algo, records)
    if terms is not None:
        means = batch_means(terms, BATCH)
        assert min(abs(losses[0] - m) for m in means) <= 1e-3 * max(1.0, losses[0]), means
    assert sum(about["rows"].values()) == expected_rows(algo, records)
    if algo == "sppo":
        assert about["rows"]["test"] > 0 and math.isfinite(about["metrics"]["eval"]["eval_loss"])
    # the lineage names the data and the base model by what they hold
    manifest = read_manifest(pairs_run)
    assert about["data"]["config_hash"] == manifest["config_hash"]
    assert about["data"]["shards"] == {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in pairs_run.glob("*.arrow")
    }
    assert about["base_model"]["digest"] == manifest["model"]["digest"]
    assert about["algo"] == algo and about["train"]["algo"] == algo
    # a complete model folder, with weights that moved; LoRA merged away
    weights = load_file(out / "model.safetensors")
    base = load_file(Path(manifest["model"]["path"]) / "model.safetensors")
    assert not any("lora" in name for name in weights)
    assert set(weights) == set(base)
    assert not torch.equal(weights[PROBE], base[PROBE])
    assert (out / "chat_template.jinja").is_file() and (out / "generation_config.json").is_file()
    assert not (tmp_path / ".ckpt.train").exists()  # the work folder goes once published
    if algo == "dpo":  # sao's hf engine samples from it, greedily as transformers does
        from sao.engines.base import Sampling
        from sao.engines.hf import HFEngine

        engine = HFEngine(str(out), dtype="float32")
        asked = [[{"role": "user", "content": "Name a colour."}]]
        [[reply]] = engine.chat(asked, Sampling(temperature=0.0, max_tokens=8, seed=1))
        assert reply.text.strip() and reply.num_tokens > 0


@trains
def test_soft_sppo_loss_and_gradient_match_plain_torch(pairs_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sao.training import TrainConfig
    from sao.training.data import training_data
    from sao.training.trl_trainers import build_trainer, trainer_arguments
    from tests.test_export import sppo_loss

    config = TrainConfig(**{**BASE, "algo": "sppo", "batch_size": 64})
    data = training_data(pairs_run, config)
    path = read_manifest(pairs_run)["model"]["path"]
    tok = AutoTokenizer.from_pretrained(path)
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    args = trainer_arguments(config, str(tmp_path / "work"), "float32", data)
    trainer = build_trainer(config, policy, None, tok, data, args, None)
    # move the policy off the reference its log-probs were precomputed with
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in policy.model.layers[-4:]:
            layer.mlp.down_proj.weight.add_(0.02 * torch.randn_like(layer.mlp.down_proj.weight))
    policy.train()
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["p_win"].numel() == data["train"].num_rows  # the whole data in one batch
    loss = trainer.compute_loss(policy, batch)
    loss.backward()
    probes = [
        policy.model.layers[0].self_attn.q_proj.weight,
        policy.model.layers[-1].mlp.up_proj.weight,
    ]
    trl_grads = [p.grad.clone() for p in probes]
    policy.zero_grad()
    rows = data["train"]
    plain = sppo_loss(
        policy,
        reference,
        tok,
        {
            "chosen": [p + c for p, c in zip(rows["prompt"], rows["chosen"], strict=True)],
            "rejected": [p + r for p, r in zip(rows["prompt"], rows["rejected"], strict=True)],
            "chosen_probs_win": rows["p_win"],
            "chosen_probs_lose": rows["p_lose"],
        },
        BETA,
    )
    plain.backward()
    assert loss.item() == pytest.approx(plain.item(), rel=1e-4)
    at_reference = first_loss_terms("sppo", read_records(pairs_run).to_pylist())
    assert abs(loss.item() - sum(at_reference) / len(at_reference)) > 0.1  # the policy moved
    for ours, theirs in zip(trl_grads, [p.grad for p in probes], strict=True):
        # summed in another order over padded batches: equal to fp32 roundoff of the largest
        scale = theirs.abs().max().item()
        assert scale > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3 * scale)


@trains
def test_an_outside_optimizer_trains_through_train_command(pairs_run, tmp_path):
    script = ROOT / "tests" / "external_dpo.py"
    command = f"{sys.executable} {script} {{data}} {{model}} {{out}} --steps 1"
    config = write_train(tmp_path / "t.yaml", command=command, format="trl-dpo")
    out = tmp_path / "ckpt"
    proc = sao_train(pairs_run, out, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    about = lineage(out)
    assert about["command"]["exit_status"] == 0 and about["command"]["template"] == command
    assert "external optimizer: 1 steps" in (out / "sao_train.log").read_text()
    base = read_manifest(pairs_run)["model"]["path"]
    assert not torch.equal(
        load_file(out / "model.safetensors")[PROBE],
        load_file(Path(base) / "model.safetensors")[PROBE],
    )
    # a failing command names its log; one that writes no model says so; neither publishes
    from sao.errors import SaoError
    from sao.training import TrainConfig, train

    for template, message in [
        (command + " --exit 3", "exited with status 3; its log: "),
        ("true {out}", "wrote no loadable model to {out}"),
    ]:
        bad = tmp_path / "bad"
        with pytest.raises(SaoError, match=re.escape(message)):
            train(pairs_run, bad, TrainConfig(**{**BASE, "command": template}))
        assert not bad.exists()
        # no staging folder stays; the work folder keeps the command's log
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bad.")] == [".bad.train"]
        assert (tmp_path / ".bad.train" / "sao_train.log").is_file()


@pytest.mark.parametrize(
    "extra,message",
    [({"command": "echo {data}"}, "must write the model to {out}"),
     ({"command": "echo {out} {weights}"}, "unknown placeholder 'weights'"),
     ({"command": "xargs -I{} echo {} {out}"}, "{} is not a placeholder"),
     ({"algo": "kto", "batch_size": 1}, "KTO needs at least 2 answers"),
     ({"algo": "simpo", "ref": "smollm2-135m-instruct"}, "SimPO has no reference model"),
     ({"algo": "orpo"}, "algo")],
)  # fmt: skip
def test_bad_training_settings_fail_in_one_line(hf_run, tmp_path, extra, message):
    config = write_train(tmp_path / "t.yaml", **extra)
    proc = sao_train(hf_run[0], tmp_path / "ckpt", config)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "ckpt").exists()


@trains
@pytest.mark.parametrize(
    "settings,message",
    [({"trainer_args": {"beta": 1}}, "set by sao from train.beta"),
     ({"trainer_args": {"output_dir": "x"}}, "set by sao from --out"),
     ({"trainer_args": {"no_such_arg": 1}}, "not a field of TRL's DPOConfig"),
     ({"trainer_args": {"optim": "nope"}}, "TRL refused the training settings"),
     ({"min_margin": 0.99}, "no rows to train dpo on")],
)  # fmt: skip
def test_settings_that_cannot_train_are_refused_before_training(
    pairs_run, tmp_path, settings, message
):
    from sao.errors import SaoError
    from sao.training import TrainConfig, train

    with pytest.raises(SaoError, match=re.escape(message)):
        train(pairs_run, tmp_path / "ckpt", TrainConfig(**{**BASE, **settings}))
    assert not (tmp_path / "ckpt").exists()


def test_calibrated_sppo_targets_recomputed_from_the_records(hf_run):
    from sentence_transformers import SentenceTransformer

    from sao.text.embed import model_path
    from sao.training import TrainConfig
    from sao.training.data import training_data

    low, high = 0.3, 0.9
    calibrated = TrainConfig(algo="sppo", split_ratio=0.0, calibration={"low": low, "high": high})
    rows = training_data(hf_run[0], calibrated)["train"].to_list()
    plain = training_data(hf_run[0], TrainConfig(algo="sppo", split_ratio=0.0))["train"].to_list()
    records = read_records(hf_run[0]).to_pylist()
    encoder = SentenceTransformer(str(model_path()), device="cpu")
    moved = 0
    assert len(rows) == len(plain) > 0
    for row, raw in zip(rows, plain, strict=True):
        record = next(r for r in records if r["prompt"] == row["prompt"])
        texts = [r["text"] for r in record["responses"]]
        vectors = encoder.encode(texts, normalize_embeddings=True)
        k, p = len(texts), record["pref_matrix"]

        def target(i: int, p=p, vectors=vectors, k=k) -> float:
            cells = []
            for j in range(k):
                if i == j:
                    cells.append(0.5)
                    continue
                cos = float(sum(a * b for a, b in zip(vectors[i], vectors[j], strict=True)))
                weight = min(1.0, max(0.0, (cos - low) / (high - low)))
                cells.append(0.5 + (p[i][j] - 0.5) * (1 - weight))
            return sum(cells) / k

        c, r = texts.index(row["chosen"][0]["content"]), texts.index(row["rejected"][0]["content"])
        assert row["p_win"] == pytest.approx(target(c), abs=1e-4)
        assert row["p_lose"] == pytest.approx(target(r), abs=1e-4)
        assert raw["p_win"] == pytest.approx(record["scores"][c], abs=1e-6)  # off: P's row mean
        moved += abs(row["p_win"] - raw["p_win"]) > 1e-4
    assert moved  # alike answers did shrink toward ½


def test_a_round_that_cannot_train_is_named_not_raised(hf_run):
    """What `sao iterate` stops on (rule no_pairs) instead of failing inside training."""
    from sao.training import TrainConfig
    from sao.training.data import untrainable

    run = hf_run[0]
    records = read_records(run).to_pylist()
    widest_margin = max(p["margin"] for r in records for p in r["pairs"])
    assert untrainable(run, TrainConfig(algo="dpo", split_ratio=0.0)) is None
    said = untrainable(run, TrainConfig(algo="dpo", min_margin=widest_margin + 0.01))
    assert said is not None and "has no rows to train dpo on" in said
    held = untrainable(run, TrainConfig(algo="dpo", split_ratio=0.999))
    assert held is not None and "fell in the held-out split" in held
    # KTO with one kind of answer: every score away from ½ is on the desirable side only
    scores = [s for r in records for s in r["scores"] if abs(s - 0.5) >= 0.005]
    if all(s > 0.5 for s in scores) or all(s < 0.5 for s in scores):
        assert "KTO needs desirable and undesirable" in untrainable(run, TrainConfig(algo="kto"))
    else:
        assert untrainable(run, TrainConfig(algo="kto", split_ratio=0.0)) is None
