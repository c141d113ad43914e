"""TRL's trainers behind one call: DPO and its losses (sigmoid, IPO, hard SPPO), SimPO through
the CPO trainer, KTO, and sao's soft SPPO (`sppo_loss.py`)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import datasets

from sao.adapters.trl import kto_balance
from sao.errors import SaoError
from sao.training.config import TrainConfig

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # CPO lives in trl.experimental

DPO_LOSS = {"dpo": "sigmoid", "ipo": "ipo", "sppo-hard": "sppo_hard", "sppo": "sppo_hard"}

# TrainingArguments sao sets from the `train:` section, never from `trainer_args`
OWNED_ARGS = {
    "output_dir": "--out",
    "learning_rate": "train.learning_rate",
    "num_train_epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "per_device_train_batch_size": "train.batch_size",
    "per_device_eval_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "warmup_steps": "train.warmup_ratio",
    "lr_scheduler_type": "train.lr_scheduler",
    "seed": "train.seed",
    "bf16": "train.dtype",
    "fp16": "train.dtype",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "max_length": "train.max_length",
    "save_steps": "train.save_steps",
    "save_strategy": "train.save_steps",
    "beta": "train.beta",
    "loss_type": "train.algo",
    "precompute_ref_log_probs": "train.precompute_ref",
    "simpo_gamma": "train.simpo_gamma",
    "cpo_alpha": "train.algo",
    "resume_from_checkpoint": "the same command again",
}


def config_class(algo: str) -> type:
    """TRL's config class for an algorithm."""
    try:
        import trl  # noqa: F401
    except ImportError:
        raise SaoError("sao train needs TRL and peft: pip install 'sao[train]'") from None
    if algo == "simpo":
        from trl.experimental.cpo import CPOConfig

        return CPOConfig
    if algo == "kto":
        from trl import KTOConfig

        return KTOConfig
    from trl import DPOConfig

    return DPOConfig


def check_trainer_args(config: TrainConfig) -> None:
    """Refuse a `trainer_args` key TRL's config does not have, or one sao sets itself."""
    fields = {f.name for f in dataclasses.fields(config_class(config.algo))}
    for key in config.trainer_args:
        if key in OWNED_ARGS:
            raise SaoError(f"train.trainer_args.{key} is set by sao from {OWNED_ARGS[key]}")
        if key not in fields:
            name = config_class(config.algo).__name__
            raise SaoError(f"train.trainer_args.{key}: not a field of TRL's {name}")


def trainer_arguments(
    config: TrainConfig, output_dir: str, dtype: str, data: datasets.DatasetDict | None
) -> Any:
    """TRL's config object for `config.algo`, with every argument sao sets (`data` only
    weighs KTO's two kinds of answer)."""
    args: dict[str, Any] = {
        "output_dir": output_dir,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "warmup_steps": config.warmup_ratio,
        "lr_scheduler_type": config.lr_scheduler,
        "seed": config.seed,
        "bf16": dtype == "bfloat16",
        "fp16": dtype == "float16",
        "gradient_checkpointing": config.gradient_checkpointing,
        "max_length": config.max_length,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 1,
        "logging_steps": 1,
        "eval_strategy": "no",  # the held-out split is evaluated once, after training
        "report_to": [],
        "dataloader_pin_memory": _has_cuda(),
        "beta": config.resolved_beta(),
    }
    if config.algo in DPO_LOSS:
        args["loss_type"] = [DPO_LOSS[config.algo]]
        args["precompute_ref_log_probs"] = config.precompute_ref
    elif config.algo == "simpo":
        args.update(loss_type="simpo", cpo_alpha=0.0, simpo_gamma=config.simpo_gamma)
    elif config.algo == "kto":
        # both kinds: training_data checks; without data (a settings check) any weight will do
        weight = kto_balance(data["train"]["label"])[2] if data is not None else 1.0
        args.update(
            precompute_ref_log_probs=config.precompute_ref,
            desirable_weight=weight,
            undesirable_weight=1.0,
        )
    args.update(config.trainer_args)
    return config_class(config.algo)(**args)


def _has_cuda() -> bool:
    """True with a CUDA device (pinned memory only helps there)."""
    from sao.engines.hardware import cuda_available

    return cuda_available()


def build_trainer(
    config: TrainConfig,
    model: Any,
    ref_model: Any,
    tokenizer: Any,
    data: datasets.DatasetDict,
    arguments: Any,
    peft_config: Any,
) -> Any:
    """The TRL trainer for `config.algo`, its data prepared (and π_ref scored when asked)."""
    common = {
        "model": model,
        "args": arguments,
        "train_dataset": data["train"],
        "eval_dataset": data.get("test"),
        "processing_class": tokenizer,
        "peft_config": peft_config,
    }
    if config.algo == "simpo":
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer(**common)
    if config.algo == "kto":
        from trl import KTOTrainer

        return KTOTrainer(ref_model=ref_model, **common)
    if config.algo == "sppo":
        from sao.training.sppo_loss import SoftSPPOTrainer

        trainer = SoftSPPOTrainer(ref_model=ref_model, **common)
    else:
        from trl import DPOTrainer

        trainer = DPOTrainer(ref_model=ref_model, **common)
    if arguments.precompute_ref_log_probs:
        trainer.ref_model = None  # its log-probs are in the data now: free it
    return trainer
