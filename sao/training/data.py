"""A run's records as the rows an algorithm trains on, through the export adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from sao.adapters import ExportOptions, export
from sao.adapters.trl import kto_balance
from sao.errors import SaoError
from sao.store import read_manifest, read_records
from sao.training.config import TrainConfig

# the export each algorithm reads (the pairwise losses share TRL's preference rows)
EXPORT_OF = {
    "dpo": "trl-dpo",
    "ipo": "trl-dpo",
    "sppo-hard": "trl-dpo",
    "simpo": "trl-dpo",
    "kto": "trl-kto",
    "sppo": "sppo",
}


def export_options(config: TrainConfig) -> ExportOptions:
    """The export options the training config names."""
    return ExportOptions(
        split_ratio=config.split_ratio,
        seed=config.seed,
        min_margin=config.min_margin,
        max_pairs_per_prompt=config.max_pairs_per_prompt,
    )


class NoTrainingRows(SaoError):
    """The run holds nothing the algorithm can train on: no rows, all held out, or one kind of
    KTO answer only."""


def untrainable(run_dir: str | Path, config: TrainConfig) -> str | None:
    """Why the run cannot train `config`'s algorithm, or None when it can (an outside command
    is given whatever its export holds)."""
    if config.command is not None:
        return None
    try:
        training_data(run_dir, config.model_copy(update={"calibration": None}))
    except NoTrainingRows as exc:
        return str(exc)
    return None


def training_data(run_dir: str | Path, config: TrainConfig) -> datasets.DatasetDict:
    """The run's rows for `config.algo`, split by prompt into train and (maybe) test.

    Soft SPPO's rows become TRL's preference rows (prompt, chosen, rejected) with the two win
    probabilities beside them. The run's `responses.chat_template_kwargs` ride along on every
    row, so the trainer renders each answer's conversation as the policy saw it when it wrote
    the answer (its system message is already the prompt's first turn).
    """
    try:
        data = export(run_dir, EXPORT_OF[config.algo], export_options(config))
    except SaoError as exc:
        if "nothing to export" not in str(exc):
            raise
        raise NoTrainingRows(
            f"{run_dir} has no rows to train {config.algo} on (no pairs, or none passing "
            "train.min_margin)"
        ) from None
    if data["train"].num_rows == 0:
        raise NoTrainingRows(
            f"all {data['test'].num_rows} rows of {run_dir} fell in the held-out split; lower "
            "train.split_ratio"
        )
    if config.algo == "kto":
        good, bad, _ = kto_balance(data["train"]["label"])
        if not good or not bad:
            raise NoTrainingRows(
                f"KTO needs desirable and undesirable answers; the run has {good} and {bad} "
                "(lower train.min_margin, or judge more answers)"
            )
    if config.algo == "sppo":
        data = data.map(
            _sppo_row, remove_columns=["chosen_probs", "chosen_probs_win", "chosen_probs_lose"]
        )
        if config.calibration is not None:
            data = _calibrated(data, run_dir, config)
    kwargs = read_manifest(run_dir)["config"]["responses"].get("chat_template_kwargs") or {}
    if kwargs:
        data = data.map(lambda _: {"chat_template_kwargs": kwargs})
    return data


def _calibrated(
    data: datasets.DatasetDict, run_dir: str | Path, config: TrainConfig
) -> datasets.DatasetDict:
    """Soft SPPO's rows with S-SPPO-style targets (training/calibration.py)."""
    from sao.training.calibration import calibrate_rows

    records = read_records(run_dir).to_pylist()
    low, high = config.calibration.low, config.calibration.high
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_list(
                calibrate_rows(split.to_list(), records, low, high), features=split.features
            )
            for name, split in data.items()
        }
    )


def _sppo_row(row: dict[str, Any]) -> dict[str, Any]:
    """An SPPO export row (full conversations) as a preference row with P_win and P_lose."""
    return {
        "prompt": row["chosen"][:-1],
        "chosen": row["chosen"][-1:],
        "rejected": row["rejected"][-1:],
        "p_win": row["chosen_probs_win"],
        "p_lose": row["chosen_probs_lose"],
    }
