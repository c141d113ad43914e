"""Pipeline stages: pure functions over batches that receive an Engine."""

from __future__ import annotations

from sao.config import JudgeConfig, PromptConfig, ResponseConfig
from sao.engines.base import Message, Sampling, TemplateKwargs


def sampling(cfg: PromptConfig | ResponseConfig, n: int, seed: int) -> Sampling:
    """The engine sampling parameters of a stage's config section."""
    return Sampling(
        n=n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed
    )


def conversation(system: str | None, *turns: Message) -> list[Message]:
    """A stage's conversation: its system message when it has one, then `turns`."""
    return [{"role": "system", "content": system}, *turns] if system else list(turns)


def template_kwargs(cfg: PromptConfig | ResponseConfig | JudgeConfig) -> TemplateKwargs:
    """The stage's chat-template variables for the engine; None when it sets none."""
    return dict(cfg.chat_template_kwargs) or None
