"""Stage 2: K sampled answers per prompt, one engine call with n=K."""

from __future__ import annotations

from sao.config import ResponseConfig
from sao.engines.base import Completion, Engine, Message
from sao.stages import sampling


def sample(
    engine: Engine, prompts: list[list[Message]], cfg: ResponseConfig, seed: int
) -> list[list[Completion]]:
    """K completions per prompt conversation, reproducible from `seed`."""
    if not prompts:  # every persona of the shard lost its prompt
        return []
    params = sampling(cfg, cfg.samples, seed)
    return engine.chat(prompts, params)
