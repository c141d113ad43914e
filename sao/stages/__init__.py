"""Pipeline stages: pure functions over batches that receive an Engine."""

from __future__ import annotations

from sao.config import JudgeConfig, PromptConfig, ResponseConfig
from sao.engines.base import Engine, Message, Sampling, TemplateKwargs, render_chat
from sao.errors import SaoError, describe
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
    DeepSeek-R1's does), told from what the generation prompt adds to the first conversation
    (a marker inside a message is no block); False where no template is rendered here (a
    server's is its own). A template that cannot render the conversation is one line."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None or not conversations:
        return False
    try:
        full = render_chat(tokenizer, conversations[0], kwargs)
        head = render_chat(tokenizer, conversations[0], kwargs, generation_prompt=False)
    except Exception as exc:
        raise SaoError(
            "the chat template cannot render this stage's conversation "
            f"({' '.join(describe(exc).split())}): check its system and chat_template_kwargs"
        ) from None
    return left_open(full[len(head) :] if full.startswith(head) else full, markers)
