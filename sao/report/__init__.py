"""`sao report`: diversity and judge metrics of a run, as JSON and a self-contained HTML page."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sao.errors import SaoError
from sao.report.build import RESPONSE_SAMPLE, Report, build
from sao.report.coverage import table_sizes
from sao.report.runs import load_run
from sao.store import write_checked


def write_report(
    run_dir: str | Path,
    baseline_dir: str | Path | None = None,
    html_path: str | Path | None = None,
    json_path: str | Path | None = None,
    color_by: str = "life_stage",
    progress: Callable[[str], None] = lambda step: None,
    response_sample: int = RESPONSE_SAMPLE,
) -> tuple[Report, Path, Path]:
    """Compute the report of a run (beside a baseline run) and write its HTML and JSON files.

    By default both files go into the run folder: report.html and report.json.
    """
    from sao.report.html import render
    from sao.text.embed import embed

    runs = [load_run(run_dir, "run")]
    if baseline_dir is not None:
        runs.append(load_run(baseline_dir, "baseline"))
    html_file = Path(html_path) if html_path else runs[0].path / "report.html"
    json_file = Path(json_path) if json_path else runs[0].path / "report.json"
    if html_file.resolve() == json_file.resolve():
        raise SaoError(f"--html and --json name the same file ({html_file})")
    valid = {*table_sizes(), "pronouns"}
    if color_by not in valid:
        raise SaoError(
            f"--color-by {color_by!r} is not a persona attribute: {', '.join(sorted(valid))}"
        )
    for target in (html_file, json_file):
        if target.is_dir():
            raise SaoError(f"{target} is a folder; give a file name")
        if not target.parent.is_dir():
            raise SaoError(f"folder not found for {target}")
    report = build(
        runs, embed, color_by=color_by, progress=progress, response_sample=response_sample
    )
    progress("drawing")
    page = render(report, color_by)
    _write(json_file, json.dumps(finite(report.data), indent=2) + "\n")
    _write(html_file, page)
    return report, html_file, json_file


def finite(value: Any) -> Any:
    """The report data with NaN and infinities as null (strict JSON) and tuples as lists."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write(path: Path, text: str) -> None:
    write_checked(path, text.encode("utf-8"))
