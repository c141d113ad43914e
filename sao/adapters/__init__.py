"""Projections from sao records to each trainer's format (DESIGN §6), and `sao export`.

`export(run_dir, "trl-dpo")` returns a `datasets.DatasetDict` (split by prompt); `write()` puts
it on disk as that trainer expects and `hint()` says how to train on it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets

from sao.adapters import openrlhf, sail, sppo, trl
from sao.adapters.hints import hint
from sao.adapters.options import ExportOptions, held_out
from sao.errors import SaoError
from sao.records import RECORD_SCHEMA
from sao.store import read_manifest, read_records, staging_folder, swap_in

Rows = Callable[[dict, ExportOptions, dict], list[dict]]
INFO_NAME = ".sao_export.json"  # hidden: `load_dataset(folder)` skips dot files


@dataclass(frozen=True)
class Format:
    """One target: how a record becomes rows, their features, and the split names."""

    rows: Rows | None  # None: the raw records themselves
    features: datasets.Features | None
    splits: tuple[str, str] = ("train", "test")
    on_disk: str = "{split}.parquet"  # file of each split; "arrow": one save_to_disk folder


FORMATS: dict[str, Format] = {
    "trl-dpo": Format(trl.dpo_rows, trl.DPO_FEATURES),
    "trl-kto": Format(trl.kto_rows, trl.KTO_FEATURES),
    "sppo": Format(sppo.rows, sppo.FEATURES),
    # datasets reads a file named eval.parquet as the test split: the sharded name keeps "eval"
    "sail": Format(
        sail.rows, sail.FEATURES, ("train", "eval"), "data/{split}-00000-of-00001.parquet"
    ),
    "openrlhf": Format(openrlhf.rows, openrlhf.FEATURES),
    "hf": Format(None, None, on_disk="arrow"),
}

__all__ = ["FORMATS", "ExportOptions", "export", "hint", "write"]


def export(
    run_dir: str | Path, fmt: str, options: ExportOptions | None = None
) -> datasets.DatasetDict:
    """The run's records projected to `fmt`, split into train and held-out by prompt."""
    if fmt not in FORMATS:
        raise SaoError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    options = options or ExportOptions()
    if not 0 <= options.split_ratio < 1:
        raise SaoError(f"--split-ratio must be in [0, 1), got {options.split_ratio}")
    target = FORMATS[fmt]
    datasets.disable_progress_bars()
    manifest = read_manifest(run_dir)
    records = read_records(run_dir).to_pylist()
    context = {"config": manifest["config"], "model": manifest["model"], "cache": {}}
    train_name, test_name = target.splits
    parts: dict[str, list[dict]] = {train_name: [], test_name: []}
    for record in records:
        split = test_name if held_out(record["record_id"], options) else train_name
        if target.rows is None:
            parts[split].append(record)
        else:
            parts[split].extend(target.rows(record, options, context))
    if target.rows is None:
        features = datasets.Features.from_arrow_schema(RECORD_SCHEMA)
    else:
        features = target.features
    if not any(parts.values()):
        raise SaoError(
            f"nothing to export: none of the {len(records)} records has a row for {fmt} "
            "(no pairs, or none passing --min-margin)"
        )
    # an empty held-out split is left out: `load_dataset(folder)` fails on an empty file
    return datasets.DatasetDict(
        {
            name: _dataset(rows, features)
            for name, rows in parts.items()
            if rows or name == train_name
        }
    )


def _dataset(rows: list[dict], features: datasets.Features) -> datasets.Dataset:
    """A dataset of rows; an empty one keeps its columns."""
    if not rows:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(rows, features=features)


def write(
    data: datasets.DatasetDict,
    fmt: str,
    out_dir: str | Path,
    *,
    source: str | Path,
    options: ExportOptions,
    force: bool = False,
) -> Path:
    """Write an export to `out_dir` (a new folder, or replaced with `force`), atomically."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SaoError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SaoError(f"{out} is not empty; pass --force to replace it")
    staging = staging_folder(out)
    try:
        if FORMATS[fmt].on_disk == "arrow":
            data.save_to_disk(str(staging))
        else:
            for name, split in data.items():
                path = staging / FORMATS[fmt].on_disk.format(split=name)
                path.parent.mkdir(parents=True, exist_ok=True)
                split.to_parquet(str(path))
        manifest = read_manifest(source)
        info = {
            "format": fmt,
            "source": str(Path(source).resolve()),
            "config_hash": manifest["config_hash"],
            "model": manifest["model"]["name"],
            "options": asdict(options),
            "rows": {name: split.num_rows for name, split in data.items()},
        }
        (staging / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n")
        swap_in(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise SaoError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
