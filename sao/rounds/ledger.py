"""`DIR/iterate.json`: every round's stages, the digests that chain them, and where to resume.

A stage is recorded only once its output is complete, with that output's digest and the
digest of what it was made from: the data run's manifest hash comes from the generator's
digest, the checkpoint's digest from that manifest hash, the next round's generator is that
checkpoint. The ledger is rewritten atomically after every stage, so a kill loses at most the
stage in progress (and the stages resume inside themselves: shards, TRL checkpoints, samples).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import sao
from sao.config import diff_keys
from sao.errors import SaoError
from sao.model_digest import folder_digest
from sao.rounds.config import IterateFile
from sao.store import MANIFEST_NAME, write_atomic

LEDGER_NAME = "iterate.json"
FORMAT = "sao-iterate/1"
# keys a rerun may change: more rounds extend the loop; stop rules only decide where it ends
EXTENDABLE = ("iterate.rounds", "iterate.stop")


def file_digest(path: Path) -> str:
    """SHA-256 of one file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_digest(run_dir: Path) -> str:
    """A data run's digest: SHA-256 of its finished manifest (which holds every shard's)."""
    return file_digest(run_dir / MANIFEST_NAME)


def output_digest(path: Path) -> str:
    """The digest a stage's output is recorded with: a run's manifest, a model folder, a file."""
    if (path / MANIFEST_NAME).is_file():
        return run_digest(path)
    if path.is_dir():
        return folder_digest(path)
    return file_digest(path)


class Ledger:
    """The iterate folder's record of its stages."""

    def __init__(self, out: Path, data: dict[str, Any]) -> None:
        self.out = out
        self.data = data

    @classmethod
    def open(cls, out: Path, loaded: IterateFile, initial: dict[str, Any]) -> Ledger:
        """The folder's ledger, new or resumed; a ledger made with other settings is refused."""
        path = out / LEDGER_NAME
        config = loaded.config_dict()
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise SaoError(f"{path} is not a readable iterate ledger") from None
            changed = [
                key
                for key in diff_keys(data.get("config", {}), config)
                if not key.startswith(EXTENDABLE)
            ]
            if data.get("initial_model", {}).get("digest") != initial.get("digest"):
                changed.append("initial model weights")
            if changed:
                shown = ", ".join(changed[:4]) + (" …" if len(changed) > 4 else "")
                raise SaoError(
                    f"{out} holds rounds made with other settings ({shown}); "
                    "use another --out folder"
                )
            data["config"] = config  # more rounds, other stop rules
            data["config_hash"] = loaded.config_hash()
            ledger = cls(out, data)
            ledger.check_outputs()
            return ledger
        if out.exists() and not out.is_dir():
            raise SaoError(f"--out {out} is a file, not a folder")
        if out.is_dir() and any(out.iterdir()):
            raise SaoError(f"{out} is not empty and holds no {LEDGER_NAME}; use another folder")
        out.mkdir(parents=True, exist_ok=True)
        ledger = cls(
            out,
            {
                "format": FORMAT,
                "sao_version": sao.__version__,
                "config": config,
                "config_hash": loaded.config_hash(),
                "initial_model": initial,
                "status": "running",
                "stages": [],
                "stopped": None,
                "best_round": None,
            },
        )
        ledger.save()
        return ledger

    def save(self) -> None:
        write_atomic(self.out / LEDGER_NAME, json.dumps(self.data, indent=2).encode())

    def stage(self, name: str, round_: int) -> dict[str, Any] | None:
        """The finished stage `name` of round `round_`, or None."""
        for entry in self.data["stages"]:
            if entry["stage"] == name and entry["round"] == round_:
                return entry
        return None

    def record(
        self, name: str, round_: int, output: Path, started: float, **links: Any
    ) -> dict[str, Any]:
        """Record a finished stage: its output, that output's digest, what it came from."""
        entry = {
            "stage": name,
            "round": round_,
            "output": str(output.relative_to(self.out)),
            "digest": output_digest(output),
            **links,
            "seconds": round(time.monotonic() - started, 1),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.data["stages"].append(entry)
        self.save()
        return entry

    def check_outputs(self) -> None:
        """Every finished stage's output is still what was recorded (else refuse to build on it)."""
        for entry in self.data["stages"]:
            path = self.out / entry["output"]
            if not path.exists() or output_digest(path) != entry["digest"]:
                raise SaoError(
                    f"{path} changed after round {entry['round']}'s {entry['stage']} stage "
                    "recorded it; restore it or use another --out folder"
                )

    def finish(self, status: str, stopped: dict[str, Any] | None, best: int | None) -> None:
        self.data.update(status=status, stopped=stopped, best_round=best)
        self.save()


def chain_breaks(data: dict[str, Any]) -> list[str]:
    """Links of the digest chain that do not hold (empty: the chain is whole): each round's
    generator is the previous checkpoint, its training data that round's run, its evaluated
    policy that checkpoint."""
    stages = {(e["round"], e["stage"]): e for e in data["stages"]}
    breaks = []
    previous = data["initial_model"]["digest"]
    rounds = sorted({r for r, _ in stages if r > 0})
    for r in rounds:
        gen, trained, judged = (stages.get((r, s)) for s in ("generate", "train", "evaluate"))
        if gen is not None and gen["generator_digest"] != previous:
            breaks.append(f"round {r}: generator is not round {r - 1}'s model")
        if trained is not None and (gen is None or trained["data_digest"] != gen["digest"]):
            breaks.append(f"round {r}: trained on other data than its run")
        if judged is not None and (trained is None or judged["policy_digest"] != trained["digest"]):
            breaks.append(f"round {r}: evaluated another policy than its checkpoint")
        previous = trained["digest"] if trained is not None else None
    return breaks
