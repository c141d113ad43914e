"""`sao report` on synthetic runs of growing size: wall time and peak memory, and how time grows.

Each run is written through the real Store with synthetic records: prompts built from bundled
personas (so persona coverage is real) and question frames, 3 % exact and 5 % edited copies of
earlier prompts, and K=2 responses of 30–90 words. Words are the persona library's, drawn with
Zipf weights. Each report runs in a fresh process, which reports its own peak resident memory.

Prints one JSON line. Responses are embedded on a fixed-size sample (`response_sample`), so the
total time grows slower than the work that scales with n and says little about it. The text
metrics (duplicates, repetition, distinct-n, self-BLEU, top n-grams, duplicate clusters) are
timed function by function inside the report, and their sum is reported on its own:
`text_growth_exponent` is the least-squares slope of log time on log n over the sizes, and
`within_n_log_n` says whether t(largest)/t(smallest) stays within `NLOGN_SLACK` times
(n₂ log n₂)/(n₁ log n₁). `growth_exponent_by_step` and `…_by_function` give every slope.
Usage: python benchmarks/report_scale.py [--sizes 10000 40000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib
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
from typing import Any

from sao.report.build import RESPONSE_SAMPLE

# timing noise on a shared 2-core machine; at 10k → 40k n log n is 4.6, n² 16: it hides no n²
NLOGN_SLACK = 1.25
# the text metrics of sao/report/build.py (sao.text and its own): timed one by one, their sum
# is the text-metric time; the step "text metrics" also holds embedding maths (cosines, Vendi)
TEXT_FUNCTIONS = (
    "exact_duplicates",
    "near_duplicates",
    "repetitions",
    "distinct_n",
    "self_bleu",
    "top_ngrams",
    "duplicate_clusters",
)

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


def time_text_functions(module: Any) -> dict[str, float]:
    """Wrap the text-metric functions `module` calls so that each adds up its seconds."""
    spent: dict[str, float] = {}
    for name in TEXT_FUNCTIONS:
        function = getattr(module, name, None)
        if function is None:  # renamed in the report: not timed, and the result says so
            continue
        spent[name] = 0.0

        def timed(*args: Any, _function: Any = function, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                spent[_name] += time.perf_counter() - start

        setattr(module, name, timed)
    return spent


def child(folder: str) -> None:
    """Run one report; print its wall time, seconds per step and per text-metric function, and
    this process's peak memory."""
    from sao.report import write_report

    # the module itself: the attribute `sao.report.build` is the function build()
    text = time_text_functions(importlib.import_module("sao.report.build"))
    if not text:
        sys.exit("none of TEXT_FUNCTIONS is in sao/report/build.py any more: update the list")

    steps: dict[str, float] = {}
    marks = [("reading", time.perf_counter())]

    def progress(step: str) -> None:
        name, since = marks[-1]
        name = name.partition(":")[0]  # "text metrics: <run>" → "text metrics"
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - since, 3)
        marks.append((step, time.perf_counter()))

    start = marks[0][1]
    write_report(folder, progress=progress)
    progress("done")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = {name: round(t, 3) for name, t in text.items()}
    print(
        json.dumps(
            {"seconds": round(seconds, 3), "peak_mb": round(peak_mb), "steps": steps, "text": text}
        )
    )


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
        "text_functions_s": [],
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
        result["text_functions_s"].append(measured["text"])
    result.update(
        growth(args.sizes, result["seconds"], result["steps"], result["text_functions_s"])
    )
    print(json.dumps(result))


def exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) on log(n): 1 is linear, 2 quadratic."""
    points = [(math.log(n), math.log(t)) for n, t in zip(sizes, seconds, strict=True) if t > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / var, 3) if var else None


def growth(
    sizes: list[int],
    seconds: list[float],
    steps: list[dict[str, float]],
    functions: list[dict[str, float]],
) -> dict:
    """How total time and text-metric time grow with n, beside n log n."""
    small, large = sizes[0], sizes[-1]
    text = [sum(f.values()) for f in functions]
    nlogn = large * math.log(large) / (small * math.log(small))
    text_ratio = text[-1] / text[0] if text[0] > 0 else None
    names = [name for name in steps[0] if all(name in s for s in steps)]
    return {
        "time_ratio": round(seconds[-1] / seconds[0], 2),
        "n_ratio": large / small,
        "nlogn_ratio": round(nlogn, 2),
        "text_metrics_s": [round(t, 3) for t in text],
        "text_time_ratio": None if text_ratio is None else round(text_ratio, 2),
        "text_growth_exponent": exponent(sizes, text),
        "nlogn_slack": NLOGN_SLACK,
        "within_n_log_n": text_ratio is not None and text_ratio <= NLOGN_SLACK * nlogn,
        "growth_exponent_by_step": {
            name: exponent(sizes, [s[name] for s in steps]) for name in names
        },
        "growth_exponent_by_function": {
            name: exponent(sizes, [t[name] for t in functions]) for name in functions[0]
        },
    }


if __name__ == "__main__":
    main()
