"""Stage 2: K sampled answers per prompt, one engine call with n=K."""

from __future__ import annotations

from dataclasses import replace

from sao.config import ResponseConfig
from sao.engines.base import Completion, Engine, Message
from sao.stages import conversation, opens_reasoning, sampling, template_kwargs
from sao.text.reasoning import DEFAULT_MARKERS, split_reasoning


def conversations(prompts: list[str], cfg: ResponseConfig) -> list[list[Message]]:
    """The conversation each prompt is answered in: the stage's system message, then the
    prompt as the user's turn. Records store it as their `prompt`."""
    return [conversation(cfg.system, {"role": "user", "content": p}) for p in prompts]


def sample(
    engine: Engine,
    prompts: list[list[Message]],
    cfg: ResponseConfig,
    seed: int,
    markers: tuple[str, str] = DEFAULT_MARKERS,
) -> list[list[Completion]]:
    """K completions per prompt conversation, reproducible from `seed`; an answer's reasoning
    (between `markers`) leaves its text for its `reasoning`."""
    if not prompts:  # every persona of the shard lost its prompt
        return []
    params = sampling(cfg, cfg.samples, seed)
    kwargs = template_kwargs(cfg)
    opened = opens_reasoning(engine, prompts, kwargs, markers)
    out = engine.chat(prompts, params, kwargs)
    return [[without_reasoning(c, markers, opened) for c in comps] for comps in out]


def without_reasoning(completion: Completion, markers: tuple[str, str], opened: bool) -> Completion:
    """The completion with its reasoning moved out of `text` into `reasoning` (`opened`: the
    template opened the reasoning block before the reply)."""
    reasoning, answer = split_reasoning(completion.text, markers, opened)
    if reasoning is None:
        return completion
    return replace(completion, text=answer, reasoning=reasoning)
