"""`sao export` on records made by `sao generate` with the embedded model, proven by training.

TRL's KTO trainer takes two real optimizer steps on its export (DPO's rows are recounted here and
trained on by TRL in test_train's outside optimizer);
SPPO's loss is computed from the exported columns; SAIL's strings and OpenRLHF's columns are
checked against the chat template rendered independently.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shlex

import datasets
import pytest
import torch

from sao.adapters.options import ExportOptions, held_out
from sao.store import read_manifest, read_records
from tests.conftest import run_sao

pytestmark = pytest.mark.slow
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


@pytest.fixture(scope="module")
def run(hf_run):
    """The shared tiny hf run (best-worst pairs), read only."""
    return hf_run[0]


def export(run, tmp_path, fmt: str, *extra: str):
    out = tmp_path / fmt
    proc = run_sao("export", str(run), "--to", fmt, "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train on it:" in proc.stdout
    return out, proc.stdout


def records(run) -> list[dict]:
    return read_records(run).to_pylist()


def both_sides_seed(run) -> int:
    """A split seed that puts records with pairs on both sides of this small run (about one
    seed in eight puts all 3-4 of them on one side)."""
    ids = [r["record_id"] for r in records(run) if r["pairs"]]
    for seed in range(100):
        held = sum(held_out(i, ExportOptions(split_ratio=0.5, seed=seed)) for i in ids)
        if 0 < held < len(ids):
            return seed
    raise AssertionError("no seed splits this run")


def model_path(run) -> str:
    return read_manifest(run)["model"]["path"]


def tokenizer(run):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path(run))


def train_two_steps(run, data, trainer_cls, config_cls, tmp_path, **config):
    """Two optimizer steps; returns (logged losses, whether the weights moved)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path(run), dtype=torch.float32)
    probe = model.model.layers[0].self_attn.q_proj.weight
    before = probe.detach().clone()
    args = config_cls(
        output_dir=str(tmp_path / "ckpt"),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        max_length=256,
        **config,
    )
    trainer = trainer_cls(
        model=model, args=args, train_dataset=data["train"], processing_class=tokenizer(run)
    )
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return losses, not torch.equal(before, probe.detach())


def test_trl_dpo_export_is_the_records_pairs(run, tmp_path):
    """The rows TRL's DPO and CPO-SimPO trainers read; TRL trains on this export in
    test_train's outside optimizer (tests/external_dpo.py) and `sao train` trains dpo and
    simpo on the same rows (make test-long)."""
    out, _ = export(run, tmp_path, "trl-dpo", "--split-ratio", "0")
    data = datasets.load_dataset(str(out))
    assert data["train"].column_names == ["prompt", "chosen", "rejected"]
    recs = records(run)
    assert data["train"].num_rows == sum(len(r["pairs"]) for r in recs) >= 2
    expected = [
        (r["prompt"], r["responses"][p["chosen"]]["text"], r["responses"][p["rejected"]]["text"])
        for r in recs
        for p in r["pairs"]
    ]
    got = [
        (row["prompt"], row["chosen"][0]["content"], row["rejected"][0]["content"])
        for row in data["train"]
    ]
    assert sorted(map(repr, got)) == sorted(map(repr, expected))


def test_trl_kto_trains_on_labels_from_the_threshold_rule(run, tmp_path):
    from trl import KTOConfig, KTOTrainer

    out, stdout = export(run, tmp_path, "trl-kto", "--split-ratio", "0", "--min-margin", "0.01")
    data = datasets.load_dataset(str(out))
    expected = [
        score > 0.5
        for rec in records(run)
        for score in rec["scores"]
        if abs(score - 0.5) >= 0.005 and score != 0.5
    ]
    assert data["train"]["label"] == expected
    assert "desirable_weight=" in stdout
    losses, moved = train_two_steps(run, data, KTOTrainer, KTOConfig, tmp_path)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert moved


def sppo_loss(policy, reference, tok, batch: dict, beta: float) -> torch.Tensor:
    """SPPO's squared loss on a batch of exported rows (the reference trainer's formula)."""

    def logp(model, conversation) -> torch.Tensor:
        head = tok.apply_chat_template(conversation[:-1], add_generation_prompt=True)["input_ids"]
        full = tok.apply_chat_template(conversation)["input_ids"]
        ids = torch.tensor([full])
        logits = model(ids).logits[0, :-1].log_softmax(-1)
        picked = logits.gather(1, ids[0, 1:, None])[:, 0]
        return picked[len(head) - 1 :].sum()

    losses = []
    for chosen, rejected, win, lose in zip(
        batch["chosen"],
        batch["rejected"],
        batch["chosen_probs_win"],
        batch["chosen_probs_lose"],
        strict=True,
    ):
        ratio_w = logp(policy, chosen) - logp(reference, chosen)
        ratio_l = logp(policy, rejected) - logp(reference, rejected)
        losses.append(
            ((ratio_w - (win - 0.5) / beta) ** 2 + (ratio_l - (lose - 0.5) / beta) ** 2) / 2
        )
    return torch.stack(losses).mean()


def test_sppo_columns_match_p_and_drive_the_loss(run, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    seed = str(both_sides_seed(run))
    out, _ = export(run, tmp_path, "sppo", "--split-ratio", "0.5", "--seed", seed)
    assert sorted(p.name for p in out.iterdir()) == [
        ".sao_export.json",
        "test.parquet",
        "train.parquet",
    ]
    data = datasets.load_dataset(str(out))
    assert set(data) == {"train", "test"}
    rows = [*data["train"], *data["test"]]
    # DESIGN §6, computed here from the stored P: the widest pair of each prompt, P[c][r], and
    # the two answers' row means of P with the diagonal ½ included
    expected = {}
    for rec in records(run):
        if not rec["pairs"]:
            continue
        p, texts = rec["pref_matrix"], [x["text"] for x in rec["responses"]]
        widest = max(rec["pairs"], key=lambda pair: pair["margin"])
        c, r = widest["chosen"], widest["rejected"]
        expected[rec["prompt"][-1]["content"]] = {
            "chosen": rec["prompt"] + [{"role": "assistant", "content": texts[c]}],
            "rejected": rec["prompt"] + [{"role": "assistant", "content": texts[r]}],
            "chosen_probs": p[c][r],
            "win": sum(p[c]) / len(p),
            "lose": sum(p[r]) / len(p),
        }
    assert len(rows) == len(expected)
    for row in rows:
        want = expected[row["chosen"][0]["content"]]
        assert row["chosen"] == want["chosen"] and row["rejected"] == want["rejected"]
        assert row["chosen_probs"] == want["chosen_probs"]  # the stored float32 cell itself
        assert row["chosen_probs_win"] == pytest.approx(want["win"], abs=1e-6)
        assert row["chosen_probs_lose"] == pytest.approx(want["lose"], abs=1e-6)
    tok = tokenizer(run)
    tiny = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    )  # fmt: skip
    torch.manual_seed(0)
    policy, reference = LlamaForCausalLM(tiny), LlamaForCausalLM(tiny)
    batch = data["train"][:2] if data["train"].num_rows >= 2 else data["test"][:2]
    loss = sppo_loss(policy, reference, tok, batch, beta=0.1)
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    same = sppo_loss(reference, reference, tok, batch, beta=0.1)  # log-ratios 0: pure targets
    targets = [
        ((w - 0.5) / 0.1) ** 2 / 2 + ((lo - 0.5) / 0.1) ** 2 / 2
        for w, lo in zip(batch["chosen_probs_win"], batch["chosen_probs_lose"], strict=True)
    ]
    assert same.item() == pytest.approx(sum(targets) / len(targets), rel=1e-4)


def test_sail_strings_are_the_chat_template_rendered(run, tmp_path):
    seed = str(both_sides_seed(run))
    out, _ = export(run, tmp_path, "sail", "--split-ratio", "0.5", "--seed", seed)
    data = datasets.load_dataset(str(out))
    assert set(data) == {"train", "eval"}
    tok = tokenizer(run)
    pairs = {
        (rec["responses"][p["chosen"]]["text"], rec["responses"][p["rejected"]]["text"]): rec
        for rec in records(run)
        for p in rec["pairs"]
    }
    rows = [*data["train"], *data["eval"]]
    assert len(rows) == len(pairs)

    def render(rec: dict, text: str) -> str:
        turn = {"role": "assistant", "content": text}
        return tok.apply_chat_template([*rec["prompt"], turn], tokenize=False)

    for row in rows:
        match = [
            rec
            for (c, r), rec in pairs.items()
            if row["prompt"] + row["chosen"] == render(rec, c)
            and row["prompt"] + row["rejected"] == render(rec, r)
        ]
        assert len(match) == 1, row
        head = tok.apply_chat_template(
            match[0]["prompt"], add_generation_prompt=True, tokenize=False
        )
        assert row["prompt"] == head
        assert row["chosen"].rstrip().endswith(tok.eos_token)


def test_openrlhf_columns_follow_its_reader_and_flags(run, tmp_path):
    seed = str(both_sides_seed(run))
    out, stdout = export(
        run, tmp_path, "openrlhf", "--max-pairs-per-prompt", "1", "--split-ratio", "0.5",
        "--seed", seed,
    )  # fmt: skip
    data = datasets.load_dataset(str(out))
    assert set(data) == {"train", "test"}
    assert data["train"].column_names == ["prompt", "chosen", "rejected", "margin"]
    tok = tokenizer(run)
    widest = {rec["prompt"][-1]["content"]: rec["pairs"][0] for rec in records(run) if rec["pairs"]}
    rows = [*data["train"], *data["test"]]
    assert len(rows) == len(widest)  # one pair per prompt, the widest
    for row in rows:
        # what OpenRLHF's reward dataset does with --data.prompt_key prompt --apply_chat_template
        prompt = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
        assert full.startswith(prompt) and row["chosen"][0]["content"] in full[len(prompt) :]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        pair = widest[row["prompt"][-1]["content"]]
        assert row["margin"] == pytest.approx(pair["margin"], abs=1e-6)
    # the printed command, parsed as a shell would: comments dropped, continuations joined
    argv = shlex.split(stdout.split("train on it:", 1)[1].replace("\\\n", " "), comments=True)
    assert argv[:3] == ["deepspeed", "--module", "openrlhf.cli.train_dpo"]
    options = {}
    for i, arg in enumerate(argv[3:], start=3):
        if arg.startswith("--"):
            value = argv[i + 1] if i + 1 < len(argv) else None
            options[arg] = None if value is None or value.startswith("--") else value
    assert options["--model.model_name_or_path"] == model_path(run)
    assert options["--data.dataset"] == options["--eval.dataset"] == str(out.resolve())
    assert options["--data.dataset_split"] == "train" and options["--eval.split"] == "test"
    for key in ("prompt", "chosen", "rejected"):  # the keys name real columns
        assert options[f"--data.{key}_key"] == key and key in data["train"].column_names
    assert "--data.apply_chat_template" in options and options["--data.apply_chat_template"] is None
    # the DPO trainer does not read the margin: its flag belongs to the reward-model trainer,
    # which the hint names in a comment, never as an argument of this command
    assert "--model.margin_loss_enable" not in argv
    assert "margin" in data["train"].column_names


def test_hf_export_is_the_raw_records_split_by_prompt(run, tmp_path):
    seed = str(both_sides_seed(run))
    out, _ = export(run, tmp_path, "hf", "--split-ratio", "0.5", "--seed", seed)
    data = datasets.load_from_disk(str(out))
    train, test = data["train"].to_list(), data["test"].to_list()
    assert sorted(r["record_id"] for r in train + test) == sorted(
        r["record_id"] for r in records(run)
    )
    assert not {r["prompt"][-1]["content"] for r in train} & {
        r["prompt"][-1]["content"] for r in test
    }
    info = json.loads((out / ".sao_export.json").read_text())
    assert info["rows"] == {"train": len(train), "test": len(test)}
    assert info["config_hash"] == read_manifest(run)["config_hash"]


def test_min_margin_and_max_pairs_filter_pairs(run, tmp_path):
    margins = sorted(p["margin"] for rec in records(run) for p in rec["pairs"])
    cut = margins[len(margins) // 2]  # the median: some pairs go, some stay
    out, _ = export(run, tmp_path, "trl-dpo", "--split-ratio", "0", "--min-margin", str(cut),
                    "--max-pairs-per-prompt", "1")  # fmt: skip
    kept = sum(any(p["margin"] >= cut for p in rec["pairs"]) for rec in records(run))
    assert 0 < datasets.load_dataset(str(out))["train"].num_rows == kept
    proc = run_sao("export", str(run), "--to", "trl-dpo", "--out", str(tmp_path / "none"),
                   "--min-margin", "1")  # fmt: skip
    assert proc.returncode != 0 and "nothing to export" in proc.stderr
    assert not (tmp_path / "none").exists()


def test_export_refuses_to_overwrite_and_bad_input(run, tmp_path):
    out, _ = export(run, tmp_path, "trl-dpo")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_sao("export", str(run), "--to", "trl-dpo", "--out", str(out))
    assert proc.returncode != 0 and "pass --force" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert (
        run_sao("export", str(run), "--to", "trl-dpo", "--out", str(out), "--force").returncode == 0
    )
    for args, fragment in [
        (("--to", "axolotl"), "unknown export format"),
        (("--to", "hf", "--split-ratio", "1.5"), "split-ratio"),
    ]:
        proc = run_sao("export", str(run), *args, "--out", str(tmp_path / "x"))
        assert proc.returncode != 0 and fragment in proc.stderr and "Traceback" not in proc.stderr
    proc = run_sao("export", str(tmp_path), "--to", "hf", "--out", str(tmp_path / "y"))
    assert proc.returncode != 0 and "not a sao output folder" in proc.stderr


def test_split_is_by_prompt_and_stable(run, tmp_path):
    seed = str(both_sides_seed(run))
    a, _ = export(run, tmp_path / "a", "trl-dpo", "--split-ratio", "0.5", "--seed", seed)
    b, _ = export(run, tmp_path / "b", "trl-dpo", "--split-ratio", "0.5", "--seed", seed)
    da, db = datasets.load_dataset(str(a)), datasets.load_dataset(str(b))
    assert da["train"].to_list() == db["train"].to_list()
    prompts = {s: {json.dumps(r["prompt"]) for r in da[s]} for s in ("train", "test")}
    assert not prompts["train"] & prompts["test"]
    assert list(itertools.chain(da["train"], da["test"]))  # nothing lost
