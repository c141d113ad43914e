"""`sao train`: a run's pairs through one optimizer into a checkpoint folder with its lineage."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sao.errors import SaoError
from sao.models import resolve_model
from sao.provenance import model_identity, versions
from sao.store import read_manifest, staging_folder
from sao.training import checkpoint
from sao.training.config import TrainConfig
from sao.training.data import EXPORT_OF, export_options, training_data

TRAIN_PACKAGES = ("sao", "trl", "transformers", "torch", "peft", "accelerate", "datasets")


@dataclass(frozen=True)
class Trained:
    """What a finished `sao train` made."""

    out: Path
    lineage: dict[str, Any]
    reused: bool  # True: the folder was already this training's result; nothing ran


def base_model_name(run_dir: Path, config: TrainConfig) -> str:
    """The model to train: `train.model`, else the run's generator (its folder when local)."""
    if config.model is not None:
        return config.model
    model = read_manifest(run_dir)["model"]
    return model["path"] if model["source"] == "local" else model["name"]


def data_identity(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """Which data trains: the run's config hash and shard checksums (not its path: a moved run
    is the same data) and the export options."""
    manifest = read_manifest(run_dir)
    return {
        "config_hash": manifest["config_hash"],
        "shards": {s["file"]: s["sha256"] for s in manifest["shards"]},
        "export": config.format if config.command else EXPORT_OF[config.algo],
        "options": asdict(export_options(config)),
    }


def settings(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """Everything that decides the trained weights: a finished folder or an interrupted run
    with other settings is not reused."""
    model = resolve_model(base_model_name(run_dir, config))
    ref = resolve_model(config.ref) if config.ref is not None else model
    return {
        "data": data_identity(run_dir, config),
        "base_model": model_identity(model),
        "reference": model_identity(ref),
        "train": config.model_dump(mode="json"),
    }


def train(
    run_dir: str | Path, out: str | Path, config: TrainConfig, *, overwrite: bool = False
) -> Trained:
    """Train on the run's pairs and write a complete model folder to `out` (resumable)."""
    run_dir, out = Path(run_dir), Path(out)
    if config.command is None:
        from sao.training.trl_trainers import check_trainer_args

        check_trainer_args(config)
    wanted = settings(run_dir, config)
    done = checkpoint.read_lineage(out)
    if done is not None and not overwrite:
        changed = [k for k in wanted if done.get(k) != wanted[k]]
        if not changed:
            return Trained(out, done, reused=True)
        raise SaoError(
            f"{out} holds a model trained with other settings ({', '.join(changed)}); pass "
            "--overwrite to replace it"
        )
    if out.exists() and done is None and any(out.iterdir()) and not overwrite:
        raise SaoError(f"{out} is not empty and is not a sao checkpoint; pass --overwrite")
    start = time.monotonic()
    work = checkpoint.claim_work_folder(out, wanted, overwrite)
    if config.command is not None:
        from sao.training.external import run_command

        staging, about = run_command(config, run_dir, wanted, work, out)
    else:
        staging, about = _train_with_trl(run_dir, config, wanted, work, out)
    lineage = {
        **wanted,
        "data_path": str(run_dir.resolve()),
        **about,
        "packages": versions(TRAIN_PACKAGES),
        "seconds": round(time.monotonic() - start, 1),
    }
    checkpoint.check_loads(staging)
    return Trained(checkpoint.publish(staging, out, lineage), lineage, reused=False)


def _train_with_trl(
    run_dir: Path, config: TrainConfig, wanted: dict[str, Any], work: Path, out: Path
) -> tuple[Path, dict[str, Any]]:
    """TRL trains; the merged model is saved to a staging folder beside the checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sao.engines.hardware import resolve_dtype
    from sao.training.trl_trainers import build_trainer, trainer_arguments

    data = training_data(run_dir, config)
    if data["train"].num_rows == 0:
        raise SaoError(f"{run_dir} has no training rows for {config.algo}")
    dtype = resolve_dtype(config.dtype)
    arguments = trainer_arguments(config, str(work), dtype, "test" in data, data)
    base = wanted["base_model"]
    tokenizer = AutoTokenizer.from_pretrained(base["path"], revision=base.get("revision"))
    model = AutoModelForCausalLM.from_pretrained(
        base["path"], revision=base.get("revision"), dtype=getattr(torch, dtype)
    )
    ref_model = None
    ref = wanted["reference"]
    if ref != base and config.algo != "simpo":  # SimPO has no reference
        ref_model = AutoModelForCausalLM.from_pretrained(
            ref["path"], revision=ref.get("revision"), dtype=getattr(torch, dtype)
        )
    trainer = build_trainer(
        config, model, ref_model, tokenizer, data, arguments, _peft_config(config)
    )
    trainer.add_callback(_failpoint_callback())
    resume = checkpoint.last_checkpoint(work)
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError:
        raise SaoError(
            "out of memory while training: lower train.batch_size (raise train.grad_accum to "
            "keep the step) or set train.gradient_checkpointing; the same command resumes "
            "from the last checkpoint"
        ) from None
    trained = trainer.model
    if config.lora is not None:
        trained = trained.merge_and_unload()
    staging = staging_folder(out)
    trained.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    return staging, {
        "algo": config.algo,
        "trainer": type(trainer).__name__,
        "trainer_args": arguments.to_dict(),
        "rows": {name: split.num_rows for name, split in data.items()},
        "resumed_from": Path(resume).name if resume else None,
        "metrics": {
            **result.metrics,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            **({"eval": evals[-1]} if evals else {}),
        },
        "log_history": history,
    }


def _failpoint_callback() -> Any:
    """A callback that gives the crash tests a point after each saved TRL checkpoint."""
    from transformers import TrainerCallback

    from sao import failpoints

    class SavedPoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            failpoints.reach("saved", state.global_step)

    return SavedPoint()


def _peft_config(config: TrainConfig) -> Any:
    """peft's LoRA config for `train.lora`, or None."""
    if config.lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise SaoError("train.lora needs peft: pip install 'sao[train]'") from None
    lora = config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
