"""`train.command`: an optimizer that lives outside sao (its own repository, its own
environment), run on the round's data exported in the format it reads."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sao.adapters import export, write
from sao.errors import SaoError
from sao.models import ResolvedModel
from sao.store import staging_folder
from sao.training import checkpoint
from sao.training.config import TrainConfig
from sao.training.data import export_options

LOG = "sao_train.log"


def render_command(template: str, places: dict[str, str]) -> str:
    """The command with each {place} filled in, shell-quoted (the config checked the places)."""
    return template.format(**{k: shlex.quote(v) for k, v in places.items()})


def run_command(
    config: TrainConfig,
    run_dir: Path,
    models: tuple[ResolvedModel, ResolvedModel],
    work: Path,
    out: Path,
) -> tuple[Path, dict[str, Any]]:
    """Export the data, run the command with its output going to a staging folder, keep its log.

    The command's exit status and log are recorded; a failed command, or an `{out}` that does
    not load as a model, fails in one line with the log's path, and nothing is published.
    """
    assert config.command is not None
    options = export_options(config)
    data_dir = write(
        export(run_dir, config.format, options),
        config.format,
        work / "data",
        source=run_dir,
        options=options,
        force=True,
    )
    base, ref = (_folder(model) for model in models)
    staging = staging_folder(out)
    places = {
        "data": str(data_dir),
        "format": config.format,
        "model": base,
        "ref": ref,
        "out": str(staging),
    }
    command = render_command(config.command, places)
    log = work / LOG
    print(f"train.command: {command}", file=sys.stderr)
    try:
        status = _run_logged(command, log)
        if status != 0:
            raise SaoError(f"train.command exited with status {status}; its log: {log}")
        try:
            checkpoint.check_loads(staging)
        except SaoError as exc:
            raise SaoError(f"train.command wrote no loadable model to {{out}}: {exc}") from None
        shutil.copyfile(log, staging / LOG)
    except BaseException:  # a failure, or an interrupt: nothing half-made stays beside `out`
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, {
        "algo": "command",
        "trainer": "command",
        "command": {"template": config.command, "ran": command, "exit_status": status, "log": LOG},
    }


def _folder(model: ResolvedModel) -> str:
    """The folder an outside optimizer loads a model from: a hub model is fetched at the
    commit sao resolved, so the command trains the weights the lineage names."""
    if model.source != "hub":
        return model.path
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model.path, revision=model.revision)
    except Exception as exc:
        raise SaoError(f"cannot fetch {model.name} for train.command: {exc}") from None


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group (the shell and every worker it launched), then
    SIGKILL whatever of it is left after 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break  # the whole group has exited
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(proc):
            time.sleep(0.2)
    proc.wait()


def _group_alive(proc: subprocess.Popen) -> bool:
    """True while any process of the command's group runs (its shell is reaped on the way)."""
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_logged(command: str, log: Path) -> int:
    """Run `command` in a shell; its output goes to stderr as it comes and to `log`."""
    try:
        with log.open("w") as sink:
            proc = subprocess.Popen(
                command,
                shell=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group: stopped whole, below
            )
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    sink.write(line)
                    sys.stderr.write(line)
                return proc.wait()
            finally:  # interrupted (SIGINT, SIGTERM): nothing it started outlives sao
                _stop_group(proc)
    except OSError as exc:
        raise SaoError(f"cannot run train.command: {exc.strerror or exc}") from None
