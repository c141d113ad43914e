"""A trained model's folder: written whole or not at all, with its lineage beside the weights.

`CKPT/` is a complete model folder (safetensors, tokenizer with its chat template, generation
config) plus `sao_lineage.json`. While training, TRL writes its resumable checkpoints to the
sibling `.CKPT.train/` with the settings they belong to; the finished model is staged in a
hidden sibling and renamed into place, and only then is the work folder removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sao.config import diff_keys
from sao.errors import SaoError, describe
from sao.store import swap_in, write_atomic

LINEAGE = "sao_lineage.json"
SETTINGS = "sao_settings.json"
WEIGHT_SUFFIX = ".safetensors"
CHECKPOINT = "checkpoint-"  # TRL's checkpoint folders, checkpoint-<step>
TRAINER_STATE = "trainer_state.json"


def work_folder(out: Path) -> Path:
    """Where TRL's resumable checkpoints of `out` live until it is finished."""
    return out.parent / f".{out.name}.train"


def read_lineage(out: Path) -> dict[str, Any] | None:
    """A finished checkpoint's lineage, or None when `out` holds none."""
    path = out / LINEAGE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SaoError(f"cannot read {path}: {exc}") from None


def claim_work_folder(out: Path, settings: dict[str, Any], overwrite: bool) -> Path:
    """The work folder for `settings`: its checkpoints are kept when an interrupted training
    had the same settings (with `overwrite` too, so an interrupted `--overwrite` run resumes
    with the same command) and refused when it had others (`overwrite`: removed); a folder
    with no checkpoint yet (a start that failed early) is simply taken over."""
    work = work_folder(out)
    recorded = work / SETTINGS
    for old in out.parent.glob(f".{out.name}.old-*"):  # left by a kill inside swap_in
        shutil.rmtree(old, ignore_errors=True)
    same = recorded.is_file() and not diff_keys(json.loads(recorded.read_text()), settings)
    if work.exists() and (last_checkpoint(work) is None or (overwrite and not same)):
        shutil.rmtree(work)
    if recorded.is_file():
        old = json.loads(recorded.read_text())
        changed = diff_keys(old, settings)
        if changed:
            shown = ", ".join(changed[:4]) + (" …" if len(changed) > 4 else "")
            raise SaoError(
                f"an interrupted training of {out} ran with other settings ({shown}); rerun it "
                "as it was, or pass --overwrite to start afresh"
            )
        return work
    try:
        work.mkdir(parents=True, exist_ok=True)
        write_json(recorded, settings)
    except OSError as exc:
        raise SaoError(f"cannot write {work}: {exc.strerror or exc}") from None
    return work


def last_checkpoint(work: Path) -> str | None:
    """TRL's newest complete checkpoint in `work` (its trainer state is written last), or
    None; a checkpoint a kill left half-written is removed."""
    if not work.is_dir():
        return None
    found = [
        (int(p.name.removeprefix(CHECKPOINT)), p)
        for p in work.iterdir()
        if p.is_dir() and p.name.removeprefix(CHECKPOINT).isdigit() and p.name != CHECKPOINT
    ]
    complete = [(step, p) for step, p in found if (p / TRAINER_STATE).is_file()]
    for _, p in found:
        if not (p / TRAINER_STATE).is_file():
            shutil.rmtree(p, ignore_errors=True)
    return str(max(complete)[1]) if complete else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """`data` as indented JSON at `path`, written atomically."""
    write_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def publish(staging: Path, out: Path, lineage: dict[str, Any]) -> Path:
    """Add the lineage to a staged model folder and rename it to `out` (replacing an old one)."""
    try:
        write_json(staging / LINEAGE, lineage)
        swap_in(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise SaoError(f"cannot write {out}: {exc.strerror or exc}") from None
    shutil.rmtree(work_folder(out), ignore_errors=True)
    return out


def check_loads(folder: Path) -> None:
    """`_check_loads`, with whatever transformers or safetensors raise as one line."""
    try:
        _check_loads(folder)
    except SaoError:
        raise
    except Exception as exc:
        raise SaoError(f"{folder} does not load as a model: {describe(exc)}") from None


def _check_loads(folder: Path) -> None:
    """Refuse a folder an engine could not load as a chat model: a config transformers reads,
    a tokenizer with a chat template, and safetensors weights holding every parameter of the
    architecture (read from the files' headers; the weights themselves are not loaded)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise SaoError(f"{folder} has no chat template: save the tokenizer with the model")
    files = sorted(folder.glob(f"*{WEIGHT_SUFFIX}"))
    if not files:
        raise SaoError(f"{folder} has no safetensors weights")
    stored: set[str] = set()
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            stored.update(handle.keys())
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tied = set(model._tied_weights_keys or {}) if config.tie_word_embeddings else set()
    missing = sorted(set(model.state_dict()) - stored - tied)
    if missing:
        raise SaoError(f"{folder} lacks weights for {len(missing)} parameters, e.g. {missing[0]}")
