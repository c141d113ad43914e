"""Pipeline vs bare engine on the same requests, start-up apart from stages; prints one JSON line.

Two fresh processes, one after the other, each with its own engine (so caches start empty):
- sao (`--side sao`, this file): `sao generate` on an engine that records every call it gets.
  It writes the requests it sent to a JSON file (each stage's conversations, sampling
  parameters and per-request seeds; the judge's conversations and labels), then replays the
  recorded calls into the same sao engine, prefix cache emptied (fresh replicas for ray):
  `replay_through_sao_engine_tok_s`, the figure this benchmark used to call "bare", which runs
  sao's engine code (prefix waves, templating, Ray's queue) on both sides.
- bare: `benchmarks/bare_<engine>.py REQUESTS.json`, the same requests written straight against
  the engine's own API in one batched call per stage; it imports nothing of sao's.
Start-up (imports, model resolution, engine start and model load; for sao also the run's
set-up before its first engine call) is reported apart from stage time (first engine call to
the end of the run); the ratio is given on stage time and end to end. Tokens are generated
tokens plus one per judge call. Usage:
  python benchmarks/overhead.py [--engine hf] [--personas 8] [--samples 4] [--shard-size 16]
With --engine openai the server at $OPENAI_BASE_URL must serve the model's folder, started with
VLLM_SERVER_DEV_MODE=1 so that its prefix cache can be reset before each side.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bare_common import Clock

if TYPE_CHECKING:
    from sao.config import RunConfig
    from sao.engines.base import Completion, Engine, Message, Sampling

HERE = Path(__file__).resolve().parent
# what each engine imports when it starts; the sao side imports it with sao, as the bare side does
ENGINE_LIBRARIES = {
    "hf": ["torch", "transformers"],
    "vllm": ["torch", "vllm"],
    "openai": ["openai"],
    "ray": ["ray", "ray.data.llm", "transformers"],
}


class Recorder:
    """Passes calls through to an engine and remembers them, their tokens and the first call."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.name, self.calls = inner, inner.name, []
        self.supports_logprobs = inner.supports_logprobs
        self.tokens = 0  # generated tokens, plus one per judge call
        self.first_call_at: float | None = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # generated_tokens; openai's model and base_url

    def _started(self) -> None:
        if self.first_call_at is None:
            self.first_call_at = time.perf_counter()

    def chat(
        self, conversations: list[list[Message]], params: Sampling, template_kwargs: Any = None
    ) -> list[list[Completion]]:
        no_template_kwargs(template_kwargs)
        self._started()
        self.calls.append(("chat", conversations, params))
        out = self.inner.chat(conversations, params)
        self.tokens += sum(c.num_tokens for cs in out for c in cs)
        return out

    def label_logprobs(
        self, conversations: list[list[Message]], labels: list[str], template_kwargs: Any = None
    ):
        no_template_kwargs(template_kwargs)
        self._started()
        self.calls.append(("label_logprobs", conversations, labels))
        out = self.inner.label_logprobs(conversations, labels)
        self.tokens += len(out)
        return out

    def close(self) -> None:
        pass


def no_template_kwargs(template_kwargs: Any) -> None:
    """The bare baselines render the default chat template: a config with template variables
    cannot be compared with them."""
    if template_kwargs:
        sys.exit("the overhead benchmark renders default chat templates: drop chat_template_kwargs")


def reset_server_cache(base_url: str) -> bool:
    """Empty a vLLM server's prefix cache; only a server started with VLLM_SERVER_DEV_MODE=1
    offers the endpoint (False otherwise)."""
    root = str(base_url).rstrip("/").removesuffix("/v1")
    try:
        request = urllib.request.Request(f"{root}/reset_prefix_cache", method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status == 200
    except OSError:
        return False


def reset_prefix_cache(engine: Engine) -> bool | None:
    """Empty the engine's prefix cache; None for an engine without one across calls (hf) or
    out of reach (ray's replicas). A replay of identical requests would otherwise skip every
    prefill."""
    llm = getattr(engine, "llm", None)
    if llm is not None:
        llm.reset_prefix_cache()
        return True
    base = getattr(engine, "base_url", None)
    return None if base is None else reset_server_cache(base)


def replay(engine: Engine, calls: list) -> tuple[int, float]:
    """Send the recorded calls to a sao engine again; returns (tokens, seconds)."""
    tokens, start = 0, time.perf_counter()
    for method, conversations, arg in calls:
        if method == "chat":
            tokens += sum(c.num_tokens for cs in engine.chat(conversations, arg) for c in cs)
        else:
            tokens += len(engine.label_logprobs(conversations, arg))
    return tokens, time.perf_counter() - start


def bare_requests(cfg: RunConfig, engine: Engine, model_path: str, calls: list) -> dict[str, Any]:
    """What sao sent, per stage, for a bare baseline: every shard's calls of a stage in one."""
    from sao.engines.hardware import (
        VLLM_CPU_ENGINE_KWARGS,
        VLLM_CPU_ENV,
        VLLM_CPU_IN_PROCESS,
        resolve_dtype,
    )
    from sao.engines.ray import _CPU_ENV as RAY_REPLICA_ENV
    from sao.seeds import request_seed, stage_seed

    # a chat call's stage is told by its seed, hashed from (run seed, shard, stage)
    stage_of = {
        stage_seed(cfg.seed, shard, stage): stage
        for shard in range(len(calls))
        for stage in ("prompts", "responses")
    }
    stages: dict[str, dict[str, Any]] = {}
    for method, conversations, arg in calls:
        if method == "label_logprobs":
            entry = stages.setdefault("judge", {"name": "judge", "labels": arg})
        else:
            name = stage_of[arg.seed]
            if arg.json_schema is not None:
                sys.exit(f"stage {name} asks for structured output; the bare sides do not")
            keys = {"n": arg.n, "temperature": arg.temperature, "top_p": arg.top_p}
            keys["max_tokens"] = arg.max_tokens
            entry = stages.setdefault(name, {"name": name, **keys, "seeds": []})
            if any(entry[k] != v for k, v in keys.items()):
                sys.exit(f"the {name} calls of different shards differ in sampling parameters")
            entry["seeds"] += [request_seed(arg.seed, i, arg.n) for i in range(len(conversations))]
        entry.setdefault("conversations", []).extend(conversations)
    dtype = cfg.engine.dtype
    return {
        "engine": engine.name,
        "model": getattr(engine, "model", None) if engine.name == "openai" else model_path,
        "settings": {
            "seed": cfg.seed,
            "dtype": {  # as sao's engine of this name resolves it
                "cuda": resolve_dtype(dtype, gpu=True) if engine.name == "hf" else dtype,
                "cpu": resolve_dtype(dtype, gpu=False),
            },
            "max_model_len": cfg.engine.max_model_len,
            "gpu_memory_utilization": cfg.engine.gpu_memory_utilization,
            "batch_size": cfg.engine.batch_size,
            "replicas": cfg.engine.replicas,
            "concurrency": cfg.engine.concurrency,
            "base_url": getattr(engine, "base_url", None),
            "vllm_cpu_engine_kwargs": VLLM_CPU_ENGINE_KWARGS,
            "vllm_cpu_env": VLLM_CPU_ENV,
            "vllm_cpu_in_process": VLLM_CPU_IN_PROCESS,
            "ray_replica_env": RAY_REPLICA_ENV,
        },
        "stages": list(stages.values()),
    }


def sao_side(args: argparse.Namespace) -> None:
    """`sao generate` on a recording engine, then the requests file and the sao replay."""
    clock = Clock()
    from rich.console import Console

    import sao.cli  # noqa: F401  (what `sao generate` imports before it starts)
    from sao.config import load_config
    from sao.engines import make_engine, resolve_engine_name
    from sao.models import resolve_model
    from sao.pipeline import generate

    name = resolve_engine_name(args.engine)
    for library in ENGINE_LIBRARIES[name]:
        importlib.import_module(library)
    clock.phase("import")
    overrides = {
        "engine.name": name,
        "model": args.model,
        "personas.count": args.personas,
        "responses.samples": args.samples,
        "responses.max_tokens": args.max_tokens,
        "prompts.max_tokens": args.max_tokens,
    }
    if args.shard_size is not None:
        overrides["output.shard_size"] = args.shard_size
    with tempfile.TemporaryDirectory(prefix="sao-overhead-run-") as out:
        cfg = load_config(None, {**overrides, "output.dir": out})
        model = resolve_model(cfg.model)
        clock.phase("resolve_model")
        engine = make_engine(cfg.engine, model.path, cfg.seed, model.revision)
        clock.phase("engine_start")
        reset_prefix_cache(engine)  # a shared server (openai) may hold an earlier run's prefixes
        recorder = Recorder(engine)
        started = time.perf_counter()
        manifest = generate(cfg, Console(quiet=True), engine=recorder)
        ended = time.perf_counter()
    assert recorder.first_call_at is not None
    clock.startup["run_setup"] = recorder.first_call_at - started  # preflight, store, checks
    requests = bare_requests(cfg, engine, model.path, recorder.calls)
    Path(args.requests).write_text(json.dumps(requests))
    cache_reset = reset_prefix_cache(engine)  # else the replay's prefills come from the cache
    if cache_reset is None and engine.name == "ray":  # replicas' caches are out of reach:
        engine.close()  # the replay gets fresh replicas, started before its clock
        engine = make_engine(cfg.engine, model.path, cfg.seed, model.revision)
        cache_reset = "fresh replicas"
    replay_tokens, replay_s = replay(engine, recorder.calls)
    engine.close()
    walls = manifest.get("totals", {}).get("wall_s", {})
    result = {
        "engine": name,
        "startup_s": round(sum(clock.startup.values()), 3),
        "startup_phases_s": {k: round(v, 3) for k, v in clock.startup.items()},
        "stage_s": round(ended - recorder.first_call_at, 3),
        "stages_s": {k: round(v, 3) for k, v in walls.items()},
        "tokens": recorder.tokens,
        "judge_calls": sum(len(c) for m, c, _ in recorder.calls if m == "label_logprobs"),
        "engine_calls": len(recorder.calls),
        "records": manifest.get("totals", {}).get("records"),
        "base_url": requests["settings"]["base_url"],
        "replay_tokens": replay_tokens,
        "replay_s": round(replay_s, 3),
        "replay_prefix_cache_reset": cache_reset,
    }
    print(json.dumps(result), flush=True)


def run_side(command: list[str]) -> dict[str, Any]:
    """Run one side in a fresh process; its last stdout line is its JSON result."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        sys.exit(f"{Path(command[1]).name} failed ({proc.returncode}):\n{tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - start, 3)  # with interpreter start, exit
    return result


def figures(side: dict[str, Any]) -> dict[str, Any]:
    """A side's tokens, seconds and tokens/s on stage time and end to end."""
    end_to_end = side["startup_s"] + side["stage_s"]
    keys = ("tokens", "judge_calls", "startup_s", "startup_phases_s", "stage_s", "stages_s")
    return {
        **{k: side[k] for k in keys},
        "end_to_end_s": round(end_to_end, 3),
        "process_s": side["process_s"],
        "stage_tok_s": round(side["tokens"] / side["stage_s"], 1),
        "end_to_end_tok_s": round(side["tokens"] / end_to_end, 1),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="hf")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--personas", type=int, default=8)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=96, help="prompts and responses")
    p.add_argument("--shard-size", type=int, help="personas per shard (sao's default: 16)")
    p.add_argument("--side", choices=["sao"], help=argparse.SUPPRESS)
    p.add_argument("--requests", help=argparse.SUPPRESS)
    return p


def compare(options: list[str]) -> dict[str, Any]:
    """Both sides, each in a fresh process, for this script's command-line `options`."""
    args = parser().parse_args(options)
    with tempfile.TemporaryDirectory(prefix="sao-overhead-") as tmp:
        requests = Path(tmp) / "requests.json"
        here = [sys.executable, str(Path(__file__).resolve())]
        sao = run_side([*here, *options, "--side", "sao", "--requests", str(requests)])
        server_reset = reset_server_cache(sao["base_url"]) if sao["base_url"] else None
        bare = run_side([sys.executable, str(HERE / f"bare_{sao['engine']}.py"), str(requests)])
    pipeline, baseline = figures(sao), figures(bare)
    return {
        "benchmark": "overhead",
        "engine": sao["engine"],
        "model": args.model,
        "personas": args.personas,
        "samples": args.samples,
        "records": sao["records"],
        "engine_calls": sao["engine_calls"],
        "pipeline": pipeline,
        "bare": baseline,
        "ratio_stage": round(pipeline["stage_tok_s"] / baseline["stage_tok_s"], 3),
        "ratio_end_to_end": round(pipeline["end_to_end_tok_s"] / baseline["end_to_end_tok_s"], 3),
        "replay_through_sao_engine_tok_s": round(sao["replay_tokens"] / sao["replay_s"], 1),
        "replay_prefix_cache_reset": sao["replay_prefix_cache_reset"],
        "server_prefix_cache_reset_before_bare": server_reset,
    }


def main() -> None:
    args = parser().parse_args()
    if args.side == "sao":
        sao_side(args)
    else:
        print(json.dumps(compare(sys.argv[1:])))


if __name__ == "__main__":
    main()
