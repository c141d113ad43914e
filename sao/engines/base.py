"""The Engine protocol every backend implements, and the value types that cross it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sao.errors import SaoError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
TemplateKwargs = dict[str, Any] | None  # extra variables for the chat template (enable_thinking)


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one engine call; `seed` makes the call reproducible.

    `json_schema` (JSON text) constrains the output to that schema (structured outputs).
    """

    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int | None = None
    json_schema: str | None = None


@dataclass(frozen=True)
class Completion:
    """One sampled answer: text, why it stopped ("stop" or "length"), tokens, and its seed.

    `seed` is the seed that produced this answer (`sao.seeds`); where one generator drew a
    whole batch (hf), it is the batch's seed and `seed_row` the answer's row in that batch.
    """

    text: str
    finish_reason: str
    num_tokens: int
    seed: int | None = None
    seed_row: int | None = None
    reasoning: str | None = None  # the reasoning ("<think>…</think>") the stage took out of text


@runtime_checkable
class Engine(Protocol):
    """What the stages need from an inference backend (DESIGN §3)."""

    name: str
    supports_logprobs: bool  # False: only pairwise-text and rubric (JSON) judges can run
    generated_tokens: int  # running count of tokens generated (a label read counts as one)

    def chat(
        self,
        conversations: list[list[Message]],
        params: Sampling,
        template_kwargs: TemplateKwargs = None,
    ) -> list[list[Completion]]:
        """One inner list per conversation, `params.n` completions each, in order;
        `template_kwargs` reach the chat template that renders every conversation."""
        ...

    def label_logprobs(
        self,
        conversations: list[list[Message]],
        labels: list[str],
        template_kwargs: TemplateKwargs = None,
    ) -> list[dict[str, float]]:
        """Log-probability of each single-token label as the next assistant token."""
        ...

    def close(self) -> None:
        """Release the model and any worker processes."""
        ...


def single_token_ids(tokenizer: Any, labels: list[str]) -> list[int]:
    """Token id of each verdict label; a label must be exactly one token for this tokenizer."""
    ids = []
    for label in labels:
        toks = tokenizer.encode(label, add_special_tokens=False)
        if len(toks) != 1:
            raise SaoError(f"judge label {label!r} is {len(toks)} tokens for this model, not 1")
        ids.append(toks[0])
    return ids


def render_chat(
    tokenizer: Any,
    conversation: list[Message],
    template_kwargs: TemplateKwargs = None,
    *,
    tokenize: bool = False,
    generation_prompt: bool = True,
) -> Any:
    """The conversation as the model reads it, up to the assistant turn's header (without it:
    `generation_prompt=False`), with the stage's template variables: text, or token ids with
    `tokenize`."""
    how = {"add_generation_prompt": generation_prompt, "tokenize": tokenize}
    if tokenize:
        how["return_dict"] = False
    return tokenizer.apply_chat_template(conversation, **how, **(template_kwargs or {}))


def require_chat_template(tokenizer: Any, model_path: str) -> None:
    """SaoError unless the tokenizer has a chat template: sao needs an instruct model."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise SaoError(f"model {model_path} has no chat template; sao needs an instruct model")
