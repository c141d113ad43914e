"""Bare vLLM: the requests of a sao run through `vllm.LLM.chat`, one batched call per stage.

Each generation stage is one `LLM.chat` call over all its conversations, one SamplingParams per
conversation (its recorded seed, `n`, temperature, top_p, max_tokens); the judge is one call
of one greedy token per conversation with the two labels' log-probabilities
(`logprob_token_ids`). No prefix waves, no sao: vLLM's own scheduling and prefix cache.
Usage: python benchmarks/bare_vllm.py REQUESTS.json   (prints one JSON line)
"""

from __future__ import annotations

import os
import sys

from bare_common import Clock, Stage, label_ids, load_requests, run_stages


def main() -> None:
    request = load_requests(sys.argv[1])
    settings = request["settings"]
    clock = Clock()
    import torch

    gpu = torch.cuda.is_available()
    in_process = {} if gpu else settings["vllm_cpu_in_process"]  # as sao runs vLLM on a CPU
    for key, value in {**settings["vllm_cpu_env"], **in_process}.items():
        os.environ.setdefault(key, value)
    import vllm

    clock.phase("import")
    llm = vllm.LLM(
        model=request["model"],
        dtype=settings["dtype"]["cuda" if gpu else "cpu"],
        max_model_len=settings["max_model_len"],
        seed=settings["seed"],
        gpu_memory_utilization=settings["gpu_memory_utilization"],
        enable_prefix_caching=True,
        **({} if gpu else settings["vllm_cpu_engine_kwargs"]),
    )
    tokenizer = llm.get_tokenizer()
    clock.phase("engine_start")

    def chat(stage: Stage) -> int:
        params = [
            vllm.SamplingParams(
                n=stage["n"],
                temperature=stage["temperature"],
                top_p=stage["top_p"],
                max_tokens=stage["max_tokens"],
                seed=seed,
            )
            for seed in stage["seeds"]
        ]
        outputs = llm.chat(stage["conversations"], sampling_params=params, use_tqdm=False)
        return sum(len(c.token_ids) for out in outputs for c in out.outputs)

    def judge(stage: Stage) -> int:
        ids = label_ids(tokenizer, stage["labels"])
        params = vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids)
        outputs = llm.chat(stage["conversations"], sampling_params=params, use_tqdm=False)
        return sum(all(t in out.outputs[0].logprobs[0] for t in ids) for out in outputs)

    run_stages(request, clock, chat, judge, vllm_version=vllm.__version__)


if __name__ == "__main__":
    main()
