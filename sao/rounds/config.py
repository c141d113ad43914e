"""An iterate file: a run's config (what each round generates with), `train:` and `iterate:`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from sao.config import RunConfig, Section, apply_override, first_error, hash_data, read_yaml
from sao.errors import SaoError
from sao.training.config import ALGOS, TrainConfig

JUDGES = ("self", "initial")  # or any model name: a judge that is neither policy


class EvalSettings(Section):
    """How each round's policy is sampled and measured on the anchor prompts."""

    samples: int = Field(
        2,
        ge=1,
        description="answers per anchor prompt and round (temperature 1, top-p 1: "
        "samples of π itself, as the KL estimate needs)",
    )
    max_tokens: int | None = Field(None, ge=1, description="null: responses.max_tokens")
    length_match: float = Field(
        1.25,
        ge=1,
        description="a pair is length-matched when its longer answer is at most "
        "this many times the shorter (in tokens)",
    )
    probes: str = Field("bundled", description="judge probes (prompt, better, worse): JSONL")
    judge_probes: bool = Field(True, description="each policy's accuracy as a judge on the probes")


class StopRules(Section):
    """Rules that end the loop early; null turns a rule off."""

    length_growth: float | None = Field(
        2.0, gt=0, description="mean answer tokens over π_0's above this"
    )
    distinct2_drop: float | None = Field(
        0.3, gt=0, le=1, description="distinct-2 fallen by this share of π_0's"
    )
    kl_max: float | None = Field(None, gt=0, description="KL(π_r ‖ π_0) above this (nats)")
    no_win: bool = Field(
        False, description="stop when π_r wins no more than it loses against π_(r−1)"
    )


class IterateConfig(Section):
    """`sao iterate`: rounds of generate → train → evaluate, each from the newest policy."""

    rounds: int = Field(3, ge=1)
    personas: int = Field(48, ge=1, description="personas per round, a slice no round reuses")
    anchors: int = Field(16, ge=1, description="personas whose prompts measure every round")
    trainer: str | None = Field(
        None,
        description="an algo (dpo, ipo, sppo-hard, simpo, kto, sppo) or 'command' "
        "(train.command); null: the train section as written",
    )
    reference: Literal["initial", "previous"] = Field(
        "initial", description="π_ref: the starting model every round, or the previous round's"
    )
    judge: str = Field("initial", description="self | initial | a model name")
    eval: EvalSettings = EvalSettings()
    stop: StopRules = StopRules()

    @model_validator(mode="after")
    def _trainer_known(self) -> IterateConfig:
        if self.trainer is not None and self.trainer not in (*ALGOS, "command"):
            raise ValueError(f"trainer {self.trainer!r}: use one of {', '.join(ALGOS)} or command")
        return self


class IterateFile(BaseModel):
    """The sections of an iterate file; `judge_engine` is the run's `judge.engine`, applied in
    the rounds whose judge is another model than their generator."""

    run: RunConfig
    train: TrainConfig
    iterate: IterateConfig
    judge_engine: dict[str, Any] = Field(default_factory=dict)

    def config_dict(self) -> dict[str, Any]:
        """Everything that decides the rounds' results (not where they are written)."""
        run = self.run.data_dict()
        # judge.engine as the run's own hash keeps it: its "how" keys left out
        judged = self.run.model_copy(
            update={
                "judge": self.run.judge.model_copy(
                    update={"model": "m", "engine": self.judge_engine}
                )
            }
        )
        run["judge"]["engine"] = judged.data_dict()["judge"]["engine"]
        return {
            "run": run,
            "train": self.train.decided_dict(),
            "iterate": self.iterate.model_dump(mode="json"),
        }

    def config_hash(self) -> str:
        return hash_data(self.config_dict())


def load_iterate_config(path: str | Path, overrides: dict[str, Any] | None = None) -> IterateFile:
    """Read an iterate file: `train:` and `iterate:` sections, every other key a run's."""
    data = read_yaml(Path(path))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            apply_override(data, dotted, value)
    sections = {
        "train": data.pop("train", None) or {},
        "iterate": data.pop("iterate", None) or {},
    }
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise SaoError(f"config {path}: {name}: should be a mapping of keys")
    judge = data.get("judge")
    if isinstance(judge, dict) and judge.get("mode") == "reward-model":
        raise SaoError(
            f"config {path}: judge.mode reward-model: iterate's judges are the policies (or a "
            "chat model); use a pairwise or rubric mode"
        )
    judge_engine = judge.pop("engine", None) or {} if isinstance(judge, dict) else {}
    try:
        run = RunConfig.model_validate(data)
        if judge_engine:  # checked as the rounds with a judge model will use it
            RunConfig.model_validate(
                {**data, "judge": {**data["judge"], "model": "m", "engine": judge_engine}}
            )
    except ValidationError as exc:
        raise SaoError(f"config {path}: {first_error(exc)}") from None
    try:
        loaded = IterateFile.model_validate({"run": run, **sections, "judge_engine": judge_engine})
    except ValidationError as exc:
        raise SaoError(f"config {path}: {first_error(exc, IterateFile)}") from None
    return with_trainer(loaded, path)


def with_trainer(loaded: IterateFile, path: str | Path) -> IterateFile:
    """`iterate.trainer` applied to the train section, and the settings rounds set refused."""
    trainer, train = loaded.iterate.trainer, loaded.train
    if trainer == "command" and train.command is None:
        raise SaoError(f"config {path}: iterate.trainer command needs train.command")
    if trainer is not None and trainer != "command":
        try:
            train = TrainConfig.model_validate(
                {**train.model_dump(), "algo": trainer, "command": None}
            )
        except ValidationError as exc:
            raise SaoError(f"config {path}: train.{first_error(exc, TrainConfig)}") from None
    for key in ("model", "ref"):
        if getattr(train, key) is not None:
            raise SaoError(
                f"config {path}: train.{key} is set by each round (iterate.reference); remove it"
            )
    if loaded.run.judge.model is not None:
        raise SaoError(
            f"config {path}: judge.model is set by iterate.judge; name the model there instead"
        )
    if loaded.run.engine.name == "openai":
        raise SaoError(
            f"config {path}: engine openai serves a fixed model; iterate loads each round's "
            "checkpoint (use hf, vllm or ray)"
        )
    return loaded.model_copy(update={"train": train})
