"""Pipeline stages: pure functions over batches that receive an Engine."""

from __future__ import annotations

from sao.config import PromptConfig, ResponseConfig
from sao.engines.base import Sampling


def sampling(cfg: PromptConfig | ResponseConfig, n: int, seed: int) -> Sampling:
    """The engine sampling parameters of a stage's config section."""
    return Sampling(
        n=n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed
    )
