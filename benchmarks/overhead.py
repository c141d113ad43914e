"""Pipeline vs bare engine on identical requests; prints one JSON line.

`sao generate` runs with an engine that records every call it receives; the recorded calls
are then replayed straight into the same loaded engine, its prefix cache emptied first.
Tokens are generated tokens plus one per judge call.
Usage: python benchmarks/overhead.py [--engine hf] [--personas 8] [--samples 4]
With --engine openai the server at $OPENAI_BASE_URL must serve the model's folder, started
with VLLM_SERVER_DEV_MODE=1 so its prefix cache can be reset. With --engine ray the replay runs
on a fresh engine (new replicas, empty caches), since Ray Data keeps its replicas out of reach.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request

from rich.console import Console

from sao.config import load_config
from sao.engines import make_engine, resolve_engine_name
from sao.engines.base import Completion, Engine, Message, Sampling
from sao.models import resolve_model
from sao.pipeline import generate


class Recorder:
    """Passes calls through to an engine and remembers them for the replay."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.name, self.calls = inner, inner.name, []
        self.supports_logprobs = inner.supports_logprobs

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # generated_tokens; openai's model and base_url

    def chat(self, conversations: list[list[Message]], params: Sampling) -> list[list[Completion]]:
        self.calls.append(("chat", conversations, params))
        return self.inner.chat(conversations, params)

    def label_logprobs(self, conversations: list[list[Message]], labels: list[str]):
        self.calls.append(("label_logprobs", conversations, labels))
        return self.inner.label_logprobs(conversations, labels)

    def close(self) -> None:
        pass


def reset_prefix_cache(engine: Engine) -> bool | None:
    """Empty the engine's prefix cache; None for an engine without one across calls (hf).

    A replay of identical requests would otherwise skip every prefill. A vLLM server resets
    only when started with VLLM_SERVER_DEV_MODE=1 (False otherwise).
    """
    llm = getattr(engine, "llm", None)
    if llm is not None:
        llm.reset_prefix_cache()
        return True
    base = getattr(engine, "base_url", None)
    if base is None:
        return None
    root = str(base).rstrip("/").removesuffix("/v1")
    try:
        request = urllib.request.Request(f"{root}/reset_prefix_cache", method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status == 200
    except OSError:
        return False


def replay(engine: Engine, calls: list) -> tuple[int, float]:
    """Send the recorded calls to the bare engine; returns (tokens, seconds)."""
    tokens, start = 0, time.perf_counter()
    for method, conversations, arg in calls:
        if method == "chat":
            tokens += sum(c.num_tokens for cs in engine.chat(conversations, arg) for c in cs)
        else:
            tokens += len(engine.label_logprobs(conversations, arg))
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--personas", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--shard-size", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            None,
            {
                "engine.name": args.engine,
                "model": args.model,
                "personas.count": args.personas,
                "responses.samples": args.samples,
                "responses.max_tokens": args.max_tokens,
                "prompts.max_tokens": args.max_tokens,
                "output.dir": out,
                "output.shard_size": args.shard_size,
            },
        )
        engine = make_engine(cfg.engine, resolve_model(cfg.model).path, cfg.seed)
        engine.chat([[{"role": "user", "content": "Hi"}]], Sampling(max_tokens=4, seed=0))
        recorder = Recorder(engine)
        reset_prefix_cache(engine)
        start = time.perf_counter()
        manifest = generate(cfg, Console(quiet=True), engine=recorder)
        pipeline_s = time.perf_counter() - start
        t = manifest["totals"]
        pipeline_tokens = t["tokens"]["prompts"] + t["tokens"]["responses"] + t["judge_calls"]
        cache_reset = reset_prefix_cache(engine)  # else the replay's prefills come from cache
        if cache_reset is None and engine.name == "ray":  # replicas' caches are out of reach:
            engine.close()  # the replay gets fresh replicas, started before its clock
            engine = make_engine(cfg.engine, resolve_model(cfg.model).path, cfg.seed)
            cache_reset = "fresh replicas"
        bare_tokens, bare_s = replay(engine, recorder.calls)
        engine.close()

    pipeline_tps, bare_tps = pipeline_tokens / pipeline_s, bare_tokens / bare_s
    print(
        json.dumps(
            {
                "benchmark": "overhead",
                "engine": resolve_engine_name(args.engine),
                "personas": args.personas,
                "samples": args.samples,
                "engine_calls": len(recorder.calls),
                "pipeline_tokens": pipeline_tokens,
                "pipeline_s": round(pipeline_s, 2),
                "pipeline_tok_s": round(pipeline_tps, 1),
                "bare_tokens": bare_tokens,
                "bare_s": round(bare_s, 2),
                "bare_tok_s": round(bare_tps, 1),
                "ratio": round(pipeline_tps / bare_tps, 3),
                "prefix_cache_reset": cache_reset,
            }
        )
    )


if __name__ == "__main__":
    main()
