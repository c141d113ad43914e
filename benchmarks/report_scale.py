"""`sao report` on synthetic runs of growing size: wall time and peak memory, and how time grows.

Each run is written through the real Store with synthetic records: prompts built from bundled
personas (so persona coverage is real) and question frames, 3 % exact and 5 % edited copies of
earlier prompts, and K=2 responses of 30–90 words. Words are the persona library's, drawn with
Zipf weights. Each report runs in a fresh process, which reports its own peak resident memory.

Prints one JSON line; `time_ratio` is t(largest)/t(smallest), beside the n log n ratio.
Usage: python benchmarks/report_scale.py [--sizes 10000 40000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sao.report.build import RESPONSE_SAMPLE

FRAMES = [
    "How can I {a} while I {b}?",
    "What is the best way to {a} as someone who {b}?",
    "Can you help me {a}? I {b}.",
    "I {b}. Any tips to {a}?",
    "Could you suggest how to {a} given that I {b}?",
    "Give me a plan to {a}; I {b}.",
    "Is it realistic to {a} if I {b}?",
    "Write a short checklist to {a} for a person who {b}.",
]
VERBS = ["plan", "fix", "learn", "organise", "budget for", "prepare", "start", "improve", "explain"]


class Words:
    """Real English words from the persona library, drawn with Zipf weights (rank r: 1/r)."""

    def __init__(self, texts: list[str], rng: random.Random) -> None:
        vocab = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower()) if len(w) > 2})
        rng.shuffle(vocab)
        self.vocab = vocab
        self.cum = list(itertools.accumulate(1 / (r + 1) for r in range(len(vocab))))
        self.rng = rng

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=count)


def synthetic_records(n: int, seed: int) -> list[dict]:
    """n records that satisfy the record schema, with realistic repeats among the prompts."""
    from sao.personas import load_library

    rng = random.Random(seed)
    personas = load_library()
    words = Words([p.text for p in personas], rng)
    prompts: list[str] = []
    records = []
    for i in range(n):
        persona = rng.choice(personas)
        roll = rng.random()
        if prompts and roll < 0.03:
            prompt = rng.choice(prompts)
        elif prompts and roll < 0.08:
            tokens = rng.choice(prompts).split()
            tokens[rng.randrange(len(tokens))] = words.draw(1)[0]
            prompt = " ".join(tokens)
        else:
            job = persona.attributes["occupation"].replace("_", " ")
            a = f"{rng.choice(VERBS)} {' '.join(words.draw(rng.randint(2, 6)))}"
            b = f"work as a {job} and care about {' '.join(words.draw(3))}"
            prompt = rng.choice(FRAMES).format(a=a, b=b)
        prompts.append(prompt)
        responses = [" ".join(words.draw(rng.randint(30, 90))) for _ in range(2)]
        p = round(rng.uniform(0.3, 0.7), 3)
        records.append(
            {
                "record_id": f"syn{i:08d}",
                "shard": 0,
                "persona_id": persona.id,
                "persona": persona.text,
                "prompt": [{"role": "user", "content": prompt}],
                "responses": [
                    {"text": r, "finish_reason": "stop", "num_tokens": len(r.split()), "seed": k}
                    for k, r in enumerate(responses)
                ],
                "pref_matrix": [[0.5, p], [1 - p, 0.5]],
                "pref_estimated": [[False, False], [False, False]],
                "scores": [p, 1 - p],
                "judgments": [],
                "pairs": [
                    {
                        "chosen": 0 if p > 0.5 else 1,
                        "rejected": 1 if p > 0.5 else 0,
                        "margin": abs(2 * p - 1),
                        "strategy": "best-worst",
                    }
                ],
                "judge_stats": None,
                "flags": [],
            }
        )
    return records


def write_run(folder: Path, n: int, seed: int) -> None:
    """A complete output folder of n synthetic records, in shards of 5,000."""
    from sao.config import RunConfig
    from sao.store import Store

    cfg = RunConfig()
    header = {"config": cfg.data_dict(), "config_hash": cfg.data_hash(), "model": {"name": "syn"}}
    store = Store.open(folder, header)
    records = synthetic_records(n, seed)
    for index, start in enumerate(range(0, n, 5000)):
        chunk = [{**r, "shard": index} for r in records[start : start + 5000]]
        store.commit(index, chunk, {"records": len(chunk)})
    store.finish({"records": n, "pairs": n})


def child(folder: str) -> None:
    """Run one report; print its wall time, seconds per step and this process's peak memory."""
    from sao.report import write_report

    steps: dict[str, float] = {}
    marks = [("reading", time.perf_counter())]

    def progress(step: str) -> None:
        name, since = marks[-1]
        steps[name] = round(time.perf_counter() - since, 1)
        marks.append((step, time.perf_counter()))

    start = marks[0][1]
    write_report(folder, progress=progress)
    progress("done")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 1), "peak_mb": round(peak_mb), "steps": steps}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 40000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the synthetic runs here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="sao-report-scale-"))
    result: dict = {
        "benchmark": "report_scale",
        "sizes": args.sizes,
        "seconds": [],
        "peak_mb": [],
        "steps": [],
        "response_sample": RESPONSE_SAMPLE,
    }
    for n in args.sizes:
        folder = base / f"syn-{n}"
        if not (folder / "manifest.json").is_file():
            write_run(folder, n, args.seed)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(folder)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            sys.exit(f"report on {n} records failed: {proc.stderr.strip().splitlines()[-1:]}")
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        result["seconds"].append(measured["seconds"])
        result["peak_mb"].append(measured["peak_mb"])
        result["steps"].append(measured["steps"])
    small, large = args.sizes[0], args.sizes[-1]
    result["time_ratio"] = round(result["seconds"][-1] / result["seconds"][0], 2)
    result["n_ratio"] = large / small
    result["nlogn_ratio"] = round(large * math.log(large) / (small * math.log(small)), 2)
    result["within_nlogn"] = result["time_ratio"] <= 1.1 * result["nlogn_ratio"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
