"""`sao iterate`: anchors, π_0's baseline, then rounds of generate → train → evaluate.

Round r generates with π_(r−1) on its own persona slice, trains π_r on that data, and
evaluates π_r on the anchors. Each stage is recorded in `iterate.json` once finished; a rerun
starts at the first stage not recorded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from sao.config import RunConfig
from sao.errors import SaoError
from sao.hashing import sha256_file
from sao.models import ResolvedModel, pinned_name, resolve_model
from sao.personas import load_personas
from sao.pipeline import generate
from sao.provenance import model_identity, weights_digest
from sao.rounds import evaluate, measures
from sao.rounds.anchors import ANCHORS_NAME, read_anchors, write_anchors
from sao.rounds.config import JUDGES, IterateFile
from sao.rounds.ledger import Ledger, output_digest
from sao.store import read_manifest, writable_folder, write_checked
from sao.training import TrainConfig, train
from sao.training.data import untrainable
from sao.training.train import check_settings


def model_name(model: ResolvedModel) -> str:
    """A name that loads exactly these weights again: the folder, or the hub id at its commit."""
    return pinned_name(model.source, model.path, model.revision)


class Loop:
    """One `sao iterate` folder and its config."""

    def __init__(self, loaded: IterateFile, out: Path, console: Console) -> None:
        self.loaded, self.out, self.console = loaded, out, console
        it = loaded.iterate
        evaluate.probes(it.eval)  # a bad probe file fails now, in one line
        needed = it.anchors + it.rounds * it.personas
        if loaded.run.personas.enabled and len(load_personas(loaded.run.personas.source)) < needed:
            raise SaoError(
                f"{it.rounds} rounds of {it.personas} personas and {it.anchors} anchors need "
                f"{needed} personas; {loaded.run.personas.source} has fewer"
            )
        check_settings(loaded.train)  # a bad trainer_args key or value, or no TRL, fails now
        self.initial = resolve_model(loaded.run.model)
        # a named judge is pinned once, so a moving hub branch cannot change it mid-loop
        self.judge = None if it.judge in JUDGES else resolve_model(it.judge)
        models = {"initial_model": self.identity(self.initial)}
        if self.judge is not None:
            models["judge_model"] = self.identity(self.judge)
        self.ledger = Ledger.open(out, loaded, models)
        self.policies: dict[int, evaluate.Policy] = {
            0: evaluate.Policy(0, self.initial, weights_digest(self.initial))
        }

    @staticmethod
    def identity(model: ResolvedModel) -> dict[str, Any]:
        return {**model_identity(model), "digest": weights_digest(model)}

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        """Every stage not yet recorded, in order, until the last round or a stop rule."""
        it = self.loaded.iterate
        anchors = self.anchors()
        metrics = {0: self.evaluate(0, anchors)}
        stopped = None
        for r in range(1, it.rounds + 1):
            self.console.print(f"round {r} of {it.rounds}", style="bold")
            data_dir = self.generate(r)
            reason = self.untrainable(r, data_dir)
            if reason is not None:
                # nothing to train on (every answer tied or alike, none above train.min_margin,
                # all held out, one kind of KTO answer): a result this loop measures, not a failure
                stopped = {"round": r, "rule": f"no_pairs: {reason}"}
                self.console.print(f"stopped in round {r}: {stopped['rule']}")
                break
            self.train(r, data_dir)
            metrics[r] = self.evaluate(r, anchors)
            rule = measures.fired_rule(it.stop, metrics[0], metrics[r])
            if rule is not None:
                stopped = {"round": r, "rule": rule}
                self.console.print(f"stopped after round {r}: {rule}")
                break
        best = measures.best_round(metrics)
        self.ledger.finish("stopped" if stopped else "complete", stopped, best)
        return self.ledger.data

    def folder(self, r: int) -> Path:
        return self.out / f"round-{r}"

    def begin(self, stage: str, r: int) -> dict[str, Any] | None:
        """The stage's ledger entry when it is finished; else None, and the clock starts."""
        self.started = time.monotonic()
        return self.ledger.stage(stage, r)

    # ------------------------------------------------------------------ stages

    def anchors(self) -> list[dict[str, Any]]:
        path = self.out / ANCHORS_NAME
        if self.begin("anchors", 0) is None:
            run = self.loaded.run
            with (
                evaluate.loaded(run, run.engine, self.initial, self.console, False) as engine,
                self.console.status("writing the anchor prompts"),
            ):
                write_anchors(run, self.loaded.iterate.anchors, engine, path)
            self.ledger.record(
                "anchors", 0, path, self.started, generator_digest=self.policies[0].digest
            )
        return read_anchors(path)

    def generate(self, r: int) -> Path:
        data_dir = self.folder(r) / "data"
        generator = self.policy(r - 1)
        if self.begin("generate", r) is None:
            cfg = self.round_config(r, data_dir)
            manifest = generate(cfg, self.console)
            if manifest.get("status") != "complete":
                raise SaoError(f"round {r}'s data run {data_dir} did not finish")
            # the chain's link as the run itself recorded its generator
            made_by = manifest["model"].get("digest") or f"hub:{manifest['model']['revision']}"
            if made_by != generator.digest:
                raise SaoError(f"round {r}'s data run was made by another model than π_{r - 1}")
            self.ledger.record("generate", r, data_dir, self.started, generator_digest=made_by)
        return data_dir

    def untrainable(self, r: int, data_dir: Path) -> str | None:
        """Why round r's data cannot train π_r (the loop stops there), or None."""
        if self.ledger.stage("train", r) is not None:
            return None
        if not pairs_in(data_dir):
            return f"round {r}'s data has no pairs"
        return untrainable(data_dir, self.train_config(r))

    def train_config(self, r: int) -> TrainConfig:
        """The train section for round r: π_(r−1) trains, against π_ref as iterate.reference
        says."""
        it, cfg = self.loaded.iterate, self.loaded.train
        initial = it.reference == "initial" and (cfg.command or cfg.algo != "simpo")
        return TrainConfig.model_validate(
            {
                **cfg.model_dump(),
                "model": model_name(self.policy(r - 1).model),
                "ref": model_name(self.initial) if initial else None,  # SimPO has none
            }
        )

    def train(self, r: int, data_dir: Path) -> None:
        out = self.folder(r) / "model"
        if self.begin("train", r) is None:
            config = self.train_config(r)
            self.console.print(f"round {r}: training π_{r} ({config.command or config.algo})")
            train(data_dir, out, config)
            self.ledger.record("train", r, out, self.started, data_digest=output_digest(data_dir))

    def evaluate(self, r: int, anchors: list[dict[str, Any]]) -> dict[str, Any]:
        path = self.folder(r) / "eval.json"
        if self.begin("evaluate", r) is None:
            writable_folder(self.folder(r))
            previous = self.policy(r - 1) if r > 0 else None
            policy = self.policy(r)
            ev = evaluate.Evaluation(
                run=self.round_config(max(r, 1), self.folder(max(r, 1)) / "data"),
                settings=self.loaded.iterate.eval,
                anchors=anchors,
                policy=policy,
                initial=self.policies[0],
                previous=previous,
                frozen_judge=self.frozen_judge(),
                data_dir=self.folder(r) / "data" if r > 0 else None,
                data_judge=(self.data_judge(r) or previous.model) if r > 0 else None,
                folder=self.folder(r),
                console=self.console,
            )
            metrics = evaluate.run(ev)
            write_checked(path, json.dumps(metrics, indent=2).encode())
            answers = sha256_file(evaluate.answers_path(self.folder(r)))
            self.ledger.record(
                "evaluate",
                r,
                path,
                self.started,
                policy_digest=policy.digest,
                answers_digest=answers,
            )
        return json.loads(path.read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ models

    def policy(self, r: int) -> evaluate.Policy:
        """π_r: the starting model, or round r's checkpoint."""
        if r not in self.policies:
            model = resolve_model(str((self.folder(r) / "model").resolve()))
            self.policies[r] = evaluate.Policy(r, model, weights_digest(model))
        return self.policies[r]

    def data_judge(self, r: int) -> ResolvedModel | None:
        """The judge model of round r's run; None when the round's generator judges."""
        choice = self.loaded.iterate.judge
        if choice == "self" or (choice == "initial" and r == 1):
            return None
        return self.initial if choice == "initial" else self.judge

    def frozen_judge(self) -> ResolvedModel:
        """The judge of every round's duels: the starting model, or iterate.judge's model."""
        return self.judge if self.judge is not None else self.initial

    def round_config(self, r: int, data_dir: Path) -> RunConfig:
        """Round r's run: π_(r−1) generates on its own slice of personas (after the anchors'
        and every earlier round's), judged as iterate.judge says."""
        it = self.loaded.iterate
        data = self.loaded.run.model_dump()
        data["model"] = self.loaded.run.model if r == 1 else model_name(self.policy(r - 1).model)
        data["personas"].update(count=it.personas, skip=it.anchors + (r - 1) * it.personas)
        judge = self.data_judge(r)
        data["judge"]["model"] = model_name(judge) if judge is not None else None
        data["judge"]["engine"] = self.loaded.judge_engine if judge is not None else {}
        data["output"]["dir"] = str(data_dir)
        return RunConfig.model_validate(data)


def pairs_in(run_dir: Path) -> int:
    """The pairs a finished run selected (what a round trains on)."""
    return sum(s["stats"].get("pairs", 0) for s in read_manifest(run_dir)["shards"])


def iterate(loaded: IterateFile, out: str | Path, console: Console) -> dict[str, Any]:
    """Run (or resume) the loop in `out`; returns the ledger."""
    return Loop(loaded, Path(out), console).run()
