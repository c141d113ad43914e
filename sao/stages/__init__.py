"""Pipeline stages: pure functions over batches that receive an Engine."""

from __future__ import annotations

from sao.config import JudgeConfig, PromptConfig, ResponseConfig
from sao.engines.base import Engine, Message, Sampling, TemplateKwargs, render_chat
from sao.text.reasoning import left_open


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


def opens_reasoning(
    engine: Engine, conversations: list[list[Message]], kwargs: TemplateKwargs, markers: tuple
) -> bool:
    """True when the engine's chat template opens a reasoning block before the reply (as
    DeepSeek-R1's does), told from the first conversation; False where no template is rendered
    here (a server's is its own)."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None or not conversations:
        return False
    return left_open(render_chat(tokenizer, conversations[0], kwargs), markers)
