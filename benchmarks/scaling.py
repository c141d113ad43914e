"""Tokens/s of the `ray` engine for 1 vs N replicas on the same prompts; prints one JSON line.

Each replica count gets a fresh engine (a local Ray cluster, or the one at $RAY_ADDRESS); the
clock starts once every replica is up and stops when the last row returns. The work is the
response stage's shape: persona-style prompts, K samples each as K seeded rows.
On this 2-core CPU a replica holds one core; on a GPU machine one GPU, so the same command
measures 1 vs 8 GPUs with --replicas 1 8 --prompts 4096.
Usage: python benchmarks/scaling.py [--replicas 1 2] [--prompts 32] [--samples 2] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import time

from sao.config import EngineConfig
from sao.engines import make_engine
from sao.engines.base import Sampling
from sao.engines.ray import RayEngine
from sao.models import resolve_model
from sao.personas import load_personas

TOPICS = ("a budget", "a recipe", "a bug", "a trip", "a poem", "a lesson plan", "a workout")


def conversations(count: int) -> list[list[dict[str, str]]]:
    """Distinct prompts, one persona each, so no two rows share more than the chat template."""
    personas = load_personas("bundled")[:count]
    return [
        [{"role": "user", "content": f"{p.text}\nHelp me with {TOPICS[i % len(TOPICS)]}."}]
        for i, p in enumerate(personas)
    ]


def measure(model: str, replicas: int, args: argparse.Namespace) -> dict[str, float]:
    """Start an engine with `replicas` replicas, time one large call, and close it."""
    started = time.perf_counter()
    cfg = EngineConfig(name="ray", replicas=replicas, batch_size=args.batch_size)
    engine = make_engine(cfg, model, seed=0)
    assert isinstance(engine, RayEngine)
    ready = time.perf_counter() - started
    try:
        params = Sampling(n=args.samples, temperature=0.8, max_tokens=args.max_tokens, seed=1)
        prompts = conversations(args.prompts)
        before = engine.generated_tokens
        t0 = time.perf_counter()
        engine.chat(prompts, params)
        seconds = time.perf_counter() - t0
        tokens = engine.generated_tokens - before
    finally:
        engine.close()
    return {"start_s": round(ready, 1), "seconds": round(seconds, 2), "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    model = resolve_model(args.model)
    runs = {r: measure(model.path, r, args) for r in args.replicas}
    tok_s = {r: run["tokens"] / run["seconds"] for r, run in runs.items()}
    low, high = min(args.replicas), max(args.replicas)
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "engine": "ray",
                "model": model.name,
                "rows": args.prompts * args.samples,
                "max_tokens": args.max_tokens,
                "tok_s": {str(r): round(v, 1) for r, v in tok_s.items()},
                "runs": {str(r): run for r, run in runs.items()},
                f"ratio_{low}_to_{high}": round(tok_s[high] / tok_s[low], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
