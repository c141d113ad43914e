"""Does each `sao train` algorithm learn from a run's pairs? One JSON line per algorithm.

Trains every algorithm for one epoch over a run of a few hundred pairs (made first with
`sao generate` when --run is not given: all pairs above a zero margin, so K=4 gives up to six
per prompt), each from the same starting model, and prints the mean training loss over the
first and the last quarter of the steps (`--max-steps` caps the epoch on a CPU: steps times
batch size pairs train). Each batch is seen once, so a lower last quarter is
learning that carries over to pairs the model had not trained on yet, not memorising one batch.
Also printed: the held-out loss after training and the seconds spent.
Usage: python benchmarks/train.py [--run RUN] [--personas 64] [--algos dpo,ipo,...]
       [--batch-size 8] [--lr 1e-6] [--beta B] [--max-steps N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sao.store import read_records
from sao.training import ALGOS, TrainConfig, train

RUN = {
    "seed": 5,
    "engine": {"name": "auto"},
    "prompts": {"candidates": 2, "max_tokens": 48},
    "responses": {"samples": 4, "max_tokens": 48},
    "pairs": {"strategy": "all-above-margin", "min_margin": 0.0},
    "output": {"shard_size": 32},
}


def make_run(folder: Path, personas: int) -> Path:
    """A `sao generate` run with many pairs."""
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump({**RUN, "personas": {"count": personas}}))
    out = folder / "run"
    sao = str(Path(sys.executable).parent / "sao")
    subprocess.run([sao, "generate", "-c", str(config), "--out", str(out)], check=True)
    return out


def quarter_means(losses: list[float]) -> tuple[float, float]:
    """Mean loss over the first and the last quarter of the steps."""
    q = max(1, len(losses) // 4)
    return statistics.fmean(losses[:q]), statistics.fmean(losses[-q:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path)
    parser.add_argument("--personas", type=int, default=64)
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--beta", type=float, help="every algorithm's β; default: each one's own")
    parser.add_argument("--max-steps", type=int, default=-1, help="cap the epoch (CPU budgets)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sao-train-bench-"))
    run = args.run or make_run(scratch, args.personas)
    records = read_records(run).to_pylist()
    pairs = sum(len(r["pairs"]) for r in records)
    for algo in args.algos.split(","):
        config = TrainConfig(
            algo=algo,
            learning_rate=args.lr,
            beta=args.beta,
            batch_size=args.batch_size,
            max_steps=args.max_steps,
            split_ratio=0.1,
            save_steps=10_000,
            warmup_ratio=0.1,
            dtype="float32",
        )
        start = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):  # TRL prints its logs: stdout is JSON only
            lineage = train(run, scratch / algo, config).lineage
        losses = [e["loss"] for e in lineage["log_history"] if "loss" in e]
        first, last = quarter_means(losses)
        held_out = lineage["metrics"].get("eval", {}).get("eval_loss")
        print(
            json.dumps(
                {
                    "algo": algo,
                    "beta": config.resolved_beta(),
                    "records": len(records),
                    "pairs": pairs,
                    "rows": lineage["rows"],
                    "steps": len(losses),
                    "loss_first_quarter": round(first, 4),
                    "loss_last_quarter": round(last, 4),
                    "falls": last < first,
                    "held_out_loss": held_out,
                    "seconds": round(time.monotonic() - start, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
