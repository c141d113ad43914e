"""A self-improvement loop on the embedded model: one JSON line per round, with every measure of
the round and the seconds each stage took.

Runs `sao iterate` (the CLI, as a user would) into --out, or reads a loop already there, then
prints round 0 (π_0's baseline) to round R. Resumable: a killed benchmark is rerun with the same
arguments and continues at the stage it lost.
Usage: python benchmarks/iterate.py --out DIR [--rounds 3] [--personas 48] [--samples 4]
       [--anchors 16] [--algo dpo] [--reference initial] [--judge initial] [--engine auto]
       [--lr 5e-6] [--max-steps 25] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from sao.rounds.ledger import read_ledger
from sao.rounds.results import round_metrics, rows, stage_seconds


def config(args: argparse.Namespace) -> dict:
    """The iterate file the benchmark runs."""
    return {
        "seed": 5,
        "engine": {"name": args.engine},
        "prompts": {"candidates": 2, "max_tokens": 48},
        "responses": {"samples": args.samples, "max_tokens": args.max_tokens},
        "pairs": {"strategy": "all-above-margin", "min_margin": 0.0},
        "output": {"shard_size": 32},
        "train": {
            "learning_rate": args.lr,
            "max_steps": args.max_steps,
            "batch_size": args.batch_size,
            "save_steps": 10,
            "dtype": "float32",
        },
        "iterate": {
            "rounds": args.rounds,
            "personas": args.personas,
            "anchors": args.anchors,
            "trainer": args.algo,
            "reference": args.reference,
            "judge": args.judge,
            "eval": {"samples": 2, "max_tokens": args.max_tokens},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--personas", type=int, default=48)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--anchors", type=int, default=16)
    parser.add_argument("--algo", default="dpo")
    parser.add_argument("--reference", default="initial")
    parser.add_argument("--judge", default="initial")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--max-steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    file = args.out.parent / f"{args.out.name}.yaml"
    file.write_text(yaml.safe_dump(config(args)))
    sao = str(Path(sys.executable).parent / "sao")
    # the loop's own output goes to stderr: stdout holds only the JSON lines
    subprocess.run(
        [sao, "iterate", "-c", str(file), "-o", str(args.out)], check=True, stdout=sys.stderr
    )
    ledger = read_ledger(args.out)
    seconds = stage_seconds(ledger)
    for row in rows(round_metrics(args.out, ledger)):
        r = row["round"]
        print(
            json.dumps(
                {
                    **row,
                    "seconds": seconds.get(r, {}),
                    "status": ledger["status"],
                    "best_round": ledger["best_round"],
                }
            )
        )


if __name__ == "__main__":
    main()
