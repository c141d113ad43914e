"""Reading what a report needs from a `sao generate` output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from sao.errors import SaoError
from sao.store import read_manifest, read_records


@dataclass
class RunTexts:
    """The texts and numbers of one run, in record order."""

    name: str
    path: Path
    manifest: dict[str, Any]
    prompts: list[str]
    persona_ids: list[str]
    responses: list[str]  # every sampled response
    first_responses: list[str]  # the first sample of each record: one per prompt
    response_tokens: list[int]
    margins: list[float] = field(default_factory=list)

    @property
    def personas_enabled(self) -> bool:
        """False for a `--no-personas` run."""
        return self.manifest.get("config", {}).get("personas", {}).get("enabled", True)


def load_run(path: str | Path, name: str) -> RunTexts:
    """Prompts, responses and pair margins of a run's committed shards."""
    folder = Path(path)
    if not folder.is_dir():
        raise SaoError(f"run folder not found: {folder}")
    try:
        manifest = read_manifest(folder)
        table = read_records(folder)
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise SaoError(
            f"cannot read the run in {folder}: {reason}; `sao generate` again resumes it"
        ) from None
    if table.num_rows == 0:
        raise SaoError(f"{folder} has no committed records yet; nothing to report")
    prompts = [turns[-1]["content"] for turns in table["prompt"].to_pylist()]
    responses = _list_field(table["responses"], "text")
    offsets = table["responses"].combine_chunks().offsets.to_pylist()
    return RunTexts(
        name=name,
        path=folder,
        manifest=manifest,
        prompts=prompts,
        persona_ids=table["persona_id"].to_pylist(),
        responses=responses,
        first_responses=[responses[start] for start in offsets[:-1]],
        response_tokens=_list_field(table["responses"], "num_tokens"),
        margins=_list_field(table["pairs"], "margin"),
    )


def _list_field(column: pa.ChunkedArray, name: str) -> list:
    """One field of a list<struct> column, flattened over all rows."""
    return column.combine_chunks().flatten().field(name).to_pylist()
