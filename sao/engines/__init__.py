"""Engine factory: `make_engine` builds the backend named in the config."""

from __future__ import annotations

import importlib.util

from sao.config import EngineConfig
from sao.engines.base import Completion, Engine, Message, Sampling
from sao.errors import SaoError

__all__ = ["Completion", "Engine", "Message", "Sampling", "make_engine", "resolve_engine_name"]


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def resolve_engine_name(name: str) -> str:
    """`auto` → vllm on a GPU with vLLM installed; hf otherwise (faster on CPU, see benchmarks/)."""
    if name != "auto":
        return name
    return "vllm" if _cuda() and importlib.util.find_spec("vllm") else "hf"


def make_engine(cfg: EngineConfig, model_path: str, seed: int) -> Engine:
    """Load the model into the configured engine; load failures become one-line errors."""
    name = resolve_engine_name(cfg.name)
    try:
        if name == "hf":
            from sao.engines.hf import HFEngine

            return HFEngine(model_path, dtype=cfg.dtype, batch_size=cfg.batch_size)
        if name == "vllm":
            from sao.engines.vllm import VLLMEngine

            return VLLMEngine(
                model_path,
                dtype=cfg.dtype,
                max_model_len=cfg.max_model_len,
                seed=seed,
                gpu_memory_utilization=cfg.gpu_memory_utilization,
            )
    except SaoError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SaoError(f"engine '{name}' could not load model {model_path}: {first}") from None
    raise SaoError(f"unknown engine '{name}': choose auto, hf or vllm")
