"""Reward-model mode: a sequence-classification reward model scores each answer once, in
batches; P[i][j] = σ((r_i − r_j) / reward_scale). The raw rewards are kept in `judgments`."""

from __future__ import annotations

import json

from sao.config import JudgeConfig
from sao.engines.base import Engine, Message
from sao.errors import SaoError
from sao.stages import conversation, template_kwargs
from sao.stages.judge_rubric import pointwise_record
from sao.stages.verdicts import Call, Verdicts
from sao.templates import Template


def request(
    prompt: str, response: str, template: Template, system: str | None = None
) -> list[Message]:
    """The conversation the reward model scores: judge.system when set, the user turn, then
    the answer."""
    return conversation(
        system,
        {"role": "user", "content": template.render(prompt=prompt)},
        {"role": "assistant", "content": response},
    )


def judge(
    engine: Engine, items: list[tuple[str, list[str]]], template: Template, cfg: JudgeConfig
) -> list[Verdicts]:
    """Score every answer of every record in one batched call, then build each P."""
    rewards = getattr(engine, "rewards", None)
    if rewards is None:
        raise SaoError(
            f"engine {engine.name} is no reward model: judge.mode reward-model needs one"
        )
    conversations = [request(p, text, template, cfg.system) for p, texts in items for text in texts]
    scores = iter(rewards(conversations, template_kwargs(cfg)) if conversations else [])
    out = []
    for _, texts in items:
        calls = []
        for _ in texts:
            reward = next(scores)
            calls.append(Call("reward", 0, json.dumps({"reward": reward}), score=reward))
        out.append(pointwise_record("reward-model", calls, cfg.reward_scale, cfg))
    return out
