"""The `train:` section: which optimizer trains on a run's pairs, and how."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from sao.adapters import FORMATS
from sao.config import Section, apply_override, first_error, read_yaml
from sao.errors import SaoError

COMMAND_PLACES = ("data", "format", "model", "ref", "out")  # what train.command may name
# DPO settings that change TRL's loss, which soft SPPO computes itself
SPPO_IGNORES = (
    "ld_alpha",
    "loss_weights",
    "use_weighting",
    "f_divergence_type",
    "f_alpha_divergence_coef",
    "label_smoothing",
    "discopop_tau",
)
Algo = Literal["dpo", "ipo", "sppo-hard", "simpo", "kto", "sppo"]
ALGOS: tuple[str, ...] = ("dpo", "ipo", "sppo-hard", "simpo", "kto", "sppo")

# β when the config leaves it out: TRL's defaults (SimPO's is the SimPO paper's 2.0, which TRL's
# CPO trainer does not set for it); soft SPPO's is uclaml/SPPO's recipe (η = 1/β = 1000), so
# that targets (P − ½)/β are tens of nats when P lies within hundredths of ½.
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "sppo-hard": 0.1, "simpo": 2.0, "kto": 0.1, "sppo": 0.001}
BETA_DEFAULT_CHANGED = frozenset({"sppo"})  # 0.1 until December 2026


class LoraSettings(Section):
    """A LoRA adapter through peft, merged into the saved checkpoint."""

    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        "all-linear", description="modules that get an adapter ('all-linear' or a list of names)"
    )


class Calibration(Section):
    """Soft SPPO's targets shrunk toward ½ for answers that mean the same (sao/training/
    calibration.py); the bounds are cosines of the answers' MiniLM embeddings."""

    low: float = Field(0.8, ge=-1, lt=1, description="cells of answers less alike are kept")
    high: float = Field(0.95, gt=-1, le=1, description="cells of answers this alike become ties")

    @model_validator(mode="after")
    def _ordered(self) -> Calibration:
        if self.high <= self.low:
            raise ValueError("high must be above low")
        return self


class TrainConfig(Section):
    """How `sao train` trains on a run's pairs."""

    algo: Algo = Field("dpo", description="dpo | ipo | sppo-hard | simpo | kto | sppo")
    model: str | None = Field(None, description="model to train; null: the run's generator")
    ref: str | None = Field(None, description="reference model π_ref; null: the trained model")
    beta: float | None = Field(None, gt=0, description="null: the algorithm's default")
    simpo_gamma: float = Field(0.5, ge=0, description="SimPO's target reward margin")
    learning_rate: float = Field(5e-7, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0: stop after this many optimizer steps")
    batch_size: int = Field(8, ge=1, description="pairs (KTO: answers) per device and step")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16, description="tokens of prompt + answer kept")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: str = "linear"
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    gradient_checkpointing: bool = False
    precompute_ref: bool = Field(
        True, description="score the data under π_ref once, before training, instead of holding it"
    )
    save_steps: int = Field(50, ge=1, description="a resumable TRL checkpoint every N steps")
    lora: LoraSettings | None = None
    calibration: Calibration | None = Field(
        None, description="sppo: S-SPPO-style targets (null: off, the plain row means of P)"
    )
    # which of the run's pairs train (the options of `sao export`)
    min_margin: float | None = Field(None, ge=0)
    max_pairs_per_prompt: int | None = Field(None, ge=1)
    split_ratio: float = Field(0.05, ge=0, lt=1, description="prompts held out for evaluation")
    trainer_args: dict[str, Any] = Field(
        default_factory=dict, description="any other field of the algorithm's TRL config"
    )
    # an optimizer of its own, outside sao
    command: str | None = Field(
        None, description="shell command with {data} {format} {model} {ref} {out}; null: TRL"
    )
    format: str = Field("trl-dpo", description="export format {data} is written in (command)")

    @model_validator(mode="after")
    def _algorithm_fits(self) -> TrainConfig:
        if self.command is not None:
            return self
        if self.algo == "kto" and self.batch_size < 2:
            raise ValueError("batch_size: KTO needs at least 2 answers a step")
        if self.algo == "simpo" and self.ref is not None:
            raise ValueError("ref: SimPO has no reference model")
        if self.calibration is not None and self.algo != "sppo":
            raise ValueError("calibration: only soft SPPO (algo sppo) reads win probabilities")
        if self.algo == "sppo" and not self.precompute_ref:
            raise ValueError("precompute_ref: soft SPPO reads π_ref's log-probs precomputed")
        ignored = sorted(set(self.trainer_args) & set(SPPO_IGNORES)) if self.algo == "sppo" else []
        if ignored:
            raise ValueError(f"trainer_args.{ignored[0]}: soft SPPO's loss does not read it")
        return self

    @model_validator(mode="after")
    def _command_places(self) -> TrainConfig:
        if self.command is None:
            return self
        try:
            fields = [n for _, n, _, _ in string.Formatter().parse(self.command) if n is not None]
            if any(not name or name.isdigit() for name in fields):
                raise ValueError("{} is not a placeholder")
            used = set(fields)
        except ValueError as exc:
            hint = "write a literal brace as {{ or }}"
            raise ValueError(f"command: {exc} ({hint})") from None
        unknown = sorted(used - set(COMMAND_PLACES))
        if unknown:
            known = ", ".join("{" + place + "}" for place in COMMAND_PLACES)
            raise ValueError(f"command: unknown placeholder '{unknown[0]}'; use {known}")
        if "out" not in used:
            raise ValueError("command must write the model to {out}")
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r}: use one of {', '.join(FORMATS)}")
        return self

    def resolved_beta(self) -> float:
        """β, the algorithm's default when unset."""
        return self.beta if self.beta is not None else DEFAULT_BETA[self.algo]

    def decided_dict(self, exclude: set[str] | None = None) -> dict[str, Any]:
        """The section as JSON, as folders and loops compare it before reuse. A β left out
        stays null, so old folders keep matching, except where its default changed since
        (BETA_DEFAULT_CHANGED): there it is stored as its value, so a folder made under the
        old default is refused instead of being resumed under the new one."""
        data = self.model_dump(mode="json", exclude=exclude)
        if self.beta is None and self.command is None and self.algo in BETA_DEFAULT_CHANGED:
            data["beta"] = self.resolved_beta()
        return data


class TrainFile(BaseModel):
    """A YAML file as `sao train -c` reads it: its `train:` section; other sections (a run's
    config) are another command's business."""

    train: TrainConfig = Field(default_factory=TrainConfig)


def load_train_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The `train:` section of a YAML file (or defaults), with dotted `train.*` overrides."""
    data = read_yaml(Path(path)) if path is not None else {}
    section = data.get("train") or {}
    if not isinstance(section, dict):
        raise SaoError(f"config {path}: train: should be a mapping of keys")
    wrapped = {"train": dict(section)}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            apply_override(wrapped, dotted, value)
    try:
        return TrainFile.model_validate(wrapped).train
    except ValidationError as exc:
        source = f"config {path}" if path is not None else "config"
        raise SaoError(f"{source}: {first_error(exc, TrainFile)}") from None
