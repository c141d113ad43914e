"""The snippet or command line that trains on an export, printed by `sao export`."""

from __future__ import annotations

from pathlib import Path

import datasets

from sao.adapters.trl import kto_balance


def _trl(out: Path, model: str, trainer: str, config: str, held_out: bool) -> list[str]:
    evaluation = ', eval_dataset=data["test"]' if held_out else ""
    return [
        "from datasets import load_dataset",
        f"from trl import {trainer}Config, {trainer}Trainer",
        f'data = load_dataset("{out}")',
        f"args = {trainer}Config({config})",
        f'trainer = {trainer}Trainer(model="{model}", args=args,',
        f'    train_dataset=data["train"]{evaluation})',
        "trainer.train()",
    ]


def kto_weight(data: datasets.DatasetDict) -> tuple[int, int, str]:
    """Desirable and undesirable answers, and the balancing desirable weight as the snippet
    writes it."""
    good, bad, weight = kto_balance(data["train"]["label"] if data["train"].num_rows else [])
    return good, bad, f"{weight:.2f}" if good and bad else "1.0"


def hint(fmt: str, out_dir: str | Path, model: str, data: datasets.DatasetDict) -> str:
    """How to train on `out_dir` with the trainer of `fmt`."""
    out = Path(out_dir).resolve()
    held_out = len(data) > 1
    if fmt == "trl-dpo":
        config = 'output_dir="dpo", loss_type="sigmoid", beta=0.1'
        lines = _trl(out, model, "DPO", config, held_out)
        lines += [
            "# SimPO, same data: from trl.experimental.cpo import CPOConfig, CPOTrainer",
            '#   CPOConfig(output_dir="simpo", loss_type="simpo", cpo_alpha=0.0)',
            "# ORPO, same data: from trl.experimental.orpo import ORPOConfig, ORPOTrainer",
        ]
    elif fmt == "trl-kto":
        good, bad, weight = kto_weight(data)
        config = f'output_dir="kto", desirable_weight={weight}, undesirable_weight=1.0'
        lines = [f"# {good} desirable and {bad} undesirable answers, weighted back to balance"]
        lines += _trl(out, model, "KTO", config, held_out)
    elif fmt == "sppo":
        lines = [
            f"# {out}: train.parquet and test.parquet with the columns SPPO's trainer reads.",
            "# In a recipe YAML of the SPPO repository (recipes/uclaml-sppo/config_full.yaml):",
            f"#   dataset_mixer: {{{out}: 1.0}}",
            f"#   model_name_or_path: {model}",
            "accelerate launch \\",
            "    --config_file recipes/accelerate_configs/deepspeed_zero3.yaml \\",
            "    sppo/run_sppo.py <your-recipe>.yaml --loss_type=sppo --beta=0.001",
        ]
    elif fmt == "sail":
        lines = [
            f"# prompt/chosen/rejected strings with the chat template of {model} applied,",
            "# splits train and eval as SAIL's pipelines read them; SAIL loads from the hub:",
            "from datasets import load_dataset",
            f'load_dataset("{out}").push_to_hub("<you>/<name>")',
        ]
    elif fmt == "openrlhf":
        lines = [
            "deepspeed --module openrlhf.cli.train_dpo \\",
            f"    --model.model_name_or_path {model} \\",
            f"    --data.dataset {out} --data.dataset_split train \\",
            *([f"    --eval.dataset {out} --eval.split test \\"] if held_out else []),
            "    --data.prompt_key prompt --data.chosen_key chosen \\",
            "    --data.rejected_key rejected --data.apply_chat_template \\",
            "    --data.max_len 2048 --model.beta 0.1 --ckpt.output_dir ./ckpt/dpo",
            "# a reward model that uses the judge's margin: openrlhf.cli.train_rm with the same",
            "#   data flags and --model.margin_loss_enable",
            "# OpenRLHF <= 0.10.1 spells the flags flat: --pretrain, --dataset, --prompt_key,",
            "#   --apply_chat_template, --max_len, --beta, --margin_loss",
        ]
    else:
        lines = [
            "import datasets",
            f'data = datasets.load_from_disk("{out}")  # train, test: the raw sao records',
        ]
    return "\n".join(lines)
