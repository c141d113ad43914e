"""`sao train`: a run's pairs through one optimizer into a checkpoint folder with its lineage."""

from __future__ import annotations

import os
import shutil
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sao.config import diff_keys
from sao.errors import SaoError, describe
from sao.models import ResolvedModel, pinned_name, resolve_model
from sao.provenance import model_identity, versions, weights_digest
from sao.store import read_manifest, staging_folder
from sao.training import checkpoint
from sao.training.config import TrainConfig
from sao.training.data import EXPORT_OF, export_options, training_data

# `train:` keys that do not change the trained weights (and the names the models were given
# by): changing them does not stop a resume, so out of memory can be met with
# gradient_checkpointing and the same command
RESUMABLE_WITH_OTHER = {"model", "ref", "gradient_checkpointing", "save_steps"}
TRAIN_PACKAGES = ("sao", "trl", "transformers", "torch", "peft", "accelerate", "datasets")


@dataclass(frozen=True)
class Trained:
    """What a finished `sao train` made."""

    out: Path
    lineage: dict[str, Any]
    reused: bool  # True: the folder was already this training's result; nothing ran


def base_model_name(run_dir: Path, config: TrainConfig) -> str:
    """The model to train: `train.model`, else the run's generator (its folder when local, its
    hub id at the commit the run used when from the hub)."""
    if config.model is not None:
        return config.model
    model = read_manifest(run_dir)["model"]
    if model["source"] == "local" or (model["source"] == "hub" and model.get("revision")):
        return pinned_name(model["source"], model["path"], model.get("revision"))
    return model["name"]


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


def pinned(identity: dict[str, Any]) -> dict[str, Any]:
    """What fixes a model's weights: a folder's digest or a hub commit, not how it was named."""
    return {k: identity[k] for k in ("source", "digest", "revision") if identity.get(k)}


def resolved_models(run_dir: Path, config: TrainConfig) -> tuple[ResolvedModel, ResolvedModel]:
    """The model to train and π_ref (the same model unless `train.ref`)."""
    base = resolve_model(base_model_name(run_dir, config))
    ref = resolve_model(config.ref) if config.ref is not None else base
    if ref is not base and weights_digest(ref) == weights_digest(base):
        ref = base  # the same weights under another name: one model, not two
    return base, ref


def settings(
    run_dir: Path, config: TrainConfig, models: tuple[ResolvedModel, ResolvedModel]
) -> dict[str, Any]:
    """Everything that decides the trained weights, compared before a folder or an
    interrupted training is reused: the data, the two models' weights, the `train:` section
    (less the names the models were given by)."""
    base, ref = (model_identity(m) for m in models)
    return {
        "data": data_identity(run_dir, config),
        "base_model": pinned(base),
        "reference": pinned(ref),
        "train": config.decided_dict(exclude=RESUMABLE_WITH_OTHER),
    }


def train(
    run_dir: str | Path, out: str | Path, config: TrainConfig, *, overwrite: bool = False
) -> Trained:
    """Train on the run's pairs and write a complete model folder to `out` (resumable)."""
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not out.is_dir():
        raise SaoError(f"--out {out} is a file, not a folder")
    check_settings(config)
    models = resolved_models(run_dir, config)
    wanted = settings(run_dir, config, models)
    done = checkpoint.read_lineage(out)
    if done is not None and not overwrite:
        changed = diff_keys({k: done.get(k) for k in wanted}, wanted)
        if not changed:
            return Trained(out, done, reused=True)
        shown = ", ".join(changed[:4]) + (" …" if len(changed) > 4 else "")
        raise SaoError(
            f"{out} holds a model trained with other settings ({shown}); pass --overwrite to "
            "replace it"
        )
    if out.exists() and done is None and any(out.iterdir()) and not overwrite:
        raise SaoError(f"{out} is not empty and is not a sao checkpoint; pass --overwrite")
    start = time.monotonic()
    work = checkpoint.claim_work_folder(out, wanted, overwrite)
    if config.command is not None:
        from sao.training.external import run_command

        staging, about = run_command(config, run_dir, models, work, out)
    else:
        staging, about = _train_with_trl(run_dir, config, models, work, out)
    lineage = {
        **wanted,
        "models": {"base": model_identity(models[0]), "reference": model_identity(models[1])},
        "data_path": str(run_dir.resolve()),
        **about,
        "packages": versions(TRAIN_PACKAGES),
        "seconds": round(time.monotonic() - start, 1),
    }
    try:
        return Trained(checkpoint.publish(staging, out, lineage), lineage, reused=False)
    finally:  # interrupted before the rename: nothing half-made stays beside `out`
        shutil.rmtree(staging, ignore_errors=True)


def _load(model: ResolvedModel, dtype: str) -> Any:
    """A causal LM from its folder or hub commit, in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        model.path, revision=model.revision, dtype=getattr(torch, dtype)
    )


def _train_with_trl(
    run_dir: Path,
    config: TrainConfig,
    models: tuple[ResolvedModel, ResolvedModel],
    work: Path,
    out: Path,
) -> tuple[Path, dict[str, Any]]:
    """TRL trains; the (merged) model is saved to a staging folder beside the checkpoint and
    checked to load."""
    import torch
    from transformers import AutoTokenizer

    from sao.engines.hardware import resolve_dtype
    from sao.training.trl_trainers import build_trainer, trainer_arguments

    data = training_data(run_dir, config)
    dtype = resolve_dtype(config.dtype)
    arguments = _trl_accepts(lambda: trainer_arguments(config, str(work), dtype, data))
    base, ref = models
    tokenizer = AutoTokenizer.from_pretrained(base.path, revision=base.revision)
    try:
        # full fine-tuning keeps fp32 master weights (bf16/fp16 run as autocast: pure-bf16
        # AdamW loses small updates); a LoRA adapter trains in fp32 over a base in `dtype`
        model = _load(base, dtype if config.lora is not None else "float32")
        ref_model = None
        # π_ref is loaded by sao (so a hub reference keeps its commit) unless it is the base
        # and TRL needs no copy: its log-probs precomputed, or LoRA with the adapter disabled
        precomputed = getattr(arguments, "precompute_ref_log_probs", False)  # SimPO: no π_ref
        own_copy = not precomputed and config.lora is None
        if config.algo != "simpo" and (ref is not base or own_copy):
            ref_model = _load(ref, dtype)
        trainer = _trl_accepts(
            lambda: build_trainer(
                config, model, ref_model, tokenizer, data, arguments, _peft_config(config)
            )
        )
        ref_model = None  # the trainer holds it if it still needs it
        trainer.add_callback(_failpoint_callback())
        resume = checkpoint.last_checkpoint(work)
        result = trainer.train(resume_from_checkpoint=resume)
        evaluated = trainer.evaluate() if "test" in data else None
    except torch.OutOfMemoryError:
        raise SaoError(
            "out of memory while training: set train.gradient_checkpointing: true and run the "
            "same command (it resumes from the last checkpoint), or lower train.batch_size "
            "(raising train.grad_accum keeps the step) with --overwrite"
        ) from None
    trained = trainer.model
    if config.lora is not None:
        trained = trained.merge_and_unload()
    elif dtype != "float32":
        trained = trained.to(getattr(torch, dtype))  # saved in the dtype it ran in
    staging = staging_folder(out)
    try:
        trained.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        checkpoint.check_loads(staging)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise SaoError(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
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
            **({"eval": evaluated} if evaluated else {}),
        },
        "log_history": history,
    }


def check_settings(config: TrainConfig) -> None:
    """Refuse, in one line and before anything runs, a `trainer_args` key TRL does not have or
    sao sets itself, and a value TRL's config refuses (an unknown `optim`, say). Settings that
    depend on the data or on the resolved dtype are checked again when training starts."""
    if config.command is not None:
        return
    from sao.training.trl_trainers import check_trainer_args, trainer_arguments

    check_trainer_args(config)
    if "deepspeed" in config.trainer_args or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return  # building TRL's config would set up a process group now: checked at training
    # built as training builds it (on a GPU, that opens CUDA now rather than at round 1's
    # training); TRL's config writes nothing to output_dir
    _trl_accepts(lambda: trainer_arguments(config, "sao-settings-check", "float32", None))


def _trl_accepts(build: Callable[[], Any]) -> Any:
    """`build()`, with TRL's refusal of a setting (a value in `trainer_args`, a combination it
    does not support) as one line instead of a traceback."""
    try:
        return build()
    except (ValueError, TypeError) as exc:
        if not _raised_by_a_library(exc):
            raise  # sao's own bug: surfaces as it is
        raise SaoError(f"TRL refused the training settings: {describe(exc)}") from exc


LIBRARIES = ("/trl/", "/transformers/", "/peft/", "/accelerate/")


def _raised_by_a_library(exc: BaseException) -> bool:
    """True when the innermost frame of `exc`'s traceback outside Python's standard library
    (an enum's lookup, say) is in TRL, transformers, peft or accelerate."""
    stdlib = sysconfig.get_paths()["stdlib"]
    last = None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        in_stdlib = name.startswith(stdlib) and "-packages" not in name
        if not in_stdlib:
            last = name
        tb = tb.tb_next
    return last is not None and any(lib in last for lib in LIBRARIES)


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
