"""`DIR/iterate.json`: every round's stages, the digests that chain them, and where to resume.

A stage is recorded only once its output is complete, with that output's digest and the
digest of what it was made from: the data run's manifest hash comes from the generator's
digest, the checkpoint's digest from that manifest hash, the next round's generator is that
checkpoint. The ledger is rewritten atomically after every stage, so a kill loses at most the
stage in progress (and the stages resume inside themselves: shards, TRL checkpoints, samples).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import sao
from sao.config import diff_keys
from sao.errors import SaoError
from sao.hashing import sha256_file
from sao.model_digest import folder_digest
from sao.rounds import LEDGER_NAME
from sao.rounds.config import IterateFile
from sao.store import MANIFEST_NAME, lock_folder, writable_folder, write_checked
from sao.verify import verify

FORMAT = "sao-iterate/1"
# keys a rerun may change: more rounds extend the loop; stop rules only decide where it ends;
# checkpointing and checkpoint frequency do not change the weights (out of memory is met so)
EXTENDABLE = (
    "iterate.rounds",
    "iterate.stop",
    "train.gradient_checkpointing",
    "train.save_steps",
)


def read_ledger(out: Path) -> dict[str, Any]:
    """A folder's ledger; SaoError for none, or one that is not a ledger."""
    path = Path(out) / LEDGER_NAME
    if not path.is_file():
        raise SaoError(f"{out} has no {LEDGER_NAME}: not a sao iterate folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SaoError(f"{path} is not a readable {FORMAT} ledger")
    return data


def run_digest(run_dir: Path) -> str:
    """A data run's digest: SHA-256 of its finished manifest (which holds every shard's)."""
    return sha256_file(run_dir / MANIFEST_NAME)


def output_digest(path: Path) -> str:
    """The digest a stage's output is recorded with: a run's manifest, a model folder, a file."""
    if (path / MANIFEST_NAME).is_file():
        return run_digest(path)
    if path.is_dir():
        return folder_digest(path)
    return sha256_file(path)


class Ledger:
    """The iterate folder's record of its stages."""

    def __init__(self, out: Path, data: dict[str, Any], lock: int) -> None:
        self.out = out
        self.data = data
        self.lock = lock  # the folder's flock, held while this process runs the loop

    @classmethod
    def open(cls, out: Path, loaded: IterateFile, models: dict[str, Any]) -> Ledger:
        """The folder's ledger, new or resumed, locked for this process; a ledger made with
        other settings or other models (`models`: the starting model's and the named judge's
        identities) is refused, as is one whose recorded outputs changed."""
        config = loaded.config_dict()
        if out.exists() and not out.is_dir():
            raise SaoError(f"--out {out} is a file, not a folder")
        if (out / LEDGER_NAME).is_file():
            lock = lock_folder(out, "sao iterate")
            try:
                return cls.resumed(out, loaded, models, lock)
            except BaseException:
                os.close(lock)  # a refused folder stays free for the next try
                raise
        if out.is_dir() and any(out.iterdir()):
            raise SaoError(f"{out} is not empty and holds no {LEDGER_NAME}; use another folder")
        writable_folder(out)
        ledger = cls(
            out,
            {
                "format": FORMAT,
                "sao_version": sao.__version__,
                "config": config,
                "config_hash": loaded.config_hash(),
                **models,
                "status": "running",
                "stages": [],
                "stopped": None,
                "best_round": None,
            },
            lock_folder(out, "sao iterate"),
        )
        ledger.save()
        return ledger

    @classmethod
    def resumed(cls, out: Path, loaded: IterateFile, models: dict[str, Any], lock: int) -> Ledger:
        """The folder's ledger, checked against this config and models, and its outputs."""
        config = loaded.config_dict()
        data = read_ledger(out)
        changed = [
            key for key in diff_keys(data["config"], config) if not key.startswith(EXTENDABLE)
        ]
        changed += [
            f"{name} weights"
            for name, about in models.items()
            if (data.get(name) or {}).get("digest") != about["digest"]
        ]
        if changed:
            shown = ", ".join(changed[:4]) + (" …" if len(changed) > 4 else "")
            raise SaoError(
                f"{out} holds rounds made with other settings ({shown}); use another --out folder"
            )
        made = max((e["round"] for e in data["stages"]), default=0)
        if loaded.iterate.rounds < made:
            raise SaoError(
                f"iterate.rounds {loaded.iterate.rounds} is below round {made}, which "
                f"{out} already holds; give at least {made}"
            )
        data.update(config=config, config_hash=loaded.config_hash(), status="running")
        ledger = cls(out, data, lock)
        ledger.check_outputs()
        return ledger

    def save(self) -> None:
        write_checked(self.out / LEDGER_NAME, json.dumps(self.data, indent=2).encode())

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
        """Every finished stage's output is still what was recorded, its data runs' shards
        whole, and the digest chain unbroken (else refuse to build on them)."""
        for entry in self.data["stages"]:
            path = self.out / entry["output"]
            files = [(path, entry["digest"])]
            if entry.get("answers_digest"):
                files.append((path.parent / "answers.json", entry["answers_digest"]))
            for where, digest in files:
                if not where.exists() or output_digest(where) != digest:
                    raise SaoError(
                        f"{where} changed after round {entry['round']}'s {entry['stage']} "
                        "stage recorded it; restore it or use another --out folder"
                    )
            if entry["stage"] == "generate":
                problems, _ = verify(path)
                if problems:
                    raise SaoError(f"round {entry['round']}'s data run {path}: {problems[0]}")
        breaks = chain_breaks(self.data)
        if breaks:
            raise SaoError(f"{self.out / LEDGER_NAME}: the digest chain breaks at {breaks[0]}")

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
