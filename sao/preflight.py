"""Checks run before a model is loaded or a file written, so bad input fails in one line."""

from __future__ import annotations

import os
from pathlib import Path

from sao.config import RunConfig
from sao.engines.base import Message
from sao.errors import SaoError
from sao.models import ResolvedModel, has_chat_template
from sao.personas import Persona
from sao.stages import judge, judge_rubric, prompts
from sao.templates import Template

SAMPLE_PERSONA = "A retired teacher who grows tomatoes."
SAMPLE_PROMPT = "How do I keep tomato plants healthy?"
SAMPLE_ANSWERS = ("Water them at the roots.", "Give them sun and good soil.")


def preflight(
    cfg: RunConfig, model: ResolvedModel, personas: list[Persona], templates: dict[str, Template]
) -> None:
    """Raise a one-line SaoError for any input that would fail later in the run."""
    check_templates(cfg, personas, templates)
    check_model(model)
    check_output(Path(cfg.output.dir))


def check_output(out: Path) -> None:
    """The output folder exists and is writable, or can be created; writes nothing."""
    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise SaoError(f"output folder {out} is not writable: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only_fs(existing) else "permission denied"
        if existing == out:
            raise SaoError(f"output folder {out} is not writable ({reason})")
        raise SaoError(f"output folder {out} cannot be created in {existing} ({reason})")


def _read_only_fs(path: Path) -> bool:
    """True when `path` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_templates(
    cfg: RunConfig, personas: list[Persona], templates: dict[str, Template]
) -> None:
    """Build one request of each stage with sample values, through the stages' own request
    builders, so a bad template fails before the model."""
    persona = personas[0] if personas else Persona("sample", SAMPLE_PERSONA)
    _nonempty(templates["prompts"], prompts.requests([persona], templates["prompts"])[0])
    judge_template = templates["judge"]
    first, second = SAMPLE_ANSWERS
    if cfg.judge.mode == "rubric":
        for answer_format in ("digit", "json"):
            turns = judge_rubric.request(SAMPLE_PROMPT, first, judge_template, answer_format)
            _nonempty(judge_template, turns)
        return
    labels = (cfg.judge.labels[0], cfg.judge.labels[1])
    turns = judge.request(SAMPLE_PROMPT, first, second, judge_template, labels)
    _nonempty(judge_template, turns)


def _nonempty(template: Template, turns: list[Message]) -> None:
    """SaoError when a template renders to nothing (every prompt would be empty)."""
    if not turns[-1]["content"]:
        raise SaoError(f"template {template.name} renders to empty text")


def check_model(model: ResolvedModel) -> None:
    """A local model folder ships a chat template (hub and served models: checked when loaded)."""
    folder = Path(model.path)
    if model.source in ("hub", "server") or not model.path or not folder.is_dir():
        return
    if not has_chat_template(folder):
        raise SaoError(
            f"model {model.name} has no chat template (no chat_template in tokenizer_config.json, "
            "no chat_template.jinja); sao needs an instruct model"
        )
