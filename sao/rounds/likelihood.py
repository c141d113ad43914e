"""Log-likelihoods of answers under a model, read from one forward pass per batch.

The KL estimates and the probe check need log π(y | x) for answers another model wrote, so
this scores with plain transformers (every model of a loop shares the starting tokenizer).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sao.engines.base import Message, TemplateKwargs, render_chat

BATCH = 8


@dataclass(frozen=True)
class Scored:
    """An answer's summed log-probability under a model, over `tokens` tokens."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """Length-normalised: the mean log-probability per token."""
        return self.logprob / self.tokens if self.tokens else 0.0


@contextmanager
def causal_lm(path: str, revision: str | None, dtype: str) -> Iterator[tuple[Any, Any]]:
    """A model and its tokenizer for scoring, released on exit."""
    import gc

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(
        path, revision=revision, dtype=getattr(torch, dtype)
    ).to(device)
    model.eval()
    try:
        yield model, tokenizer
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def answer_ids(tokenizer: Any, text: str, ended: bool) -> list[int]:
    """An answer's token ids; with `ended`, the end-of-turn token the model stopped on."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if ended and tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    return ids


def score(
    model: Any,
    tokenizer: Any,
    items: list[tuple[list[Message], str, bool]],
    kwargs: TemplateKwargs = None,
) -> list[Scored]:
    """log π(answer | conversation) of each (conversation, answer, ended) item."""
    import torch

    rows = []
    for conversation, text, ended in items:
        prompt = list(render_chat(tokenizer, conversation, kwargs, tokenize=True))
        rows.append((prompt, answer_ids(tokenizer, text, ended)))
    out: list[Scored] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, a) in enumerate(batch):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            mask[i, : len(p) + len(a)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        for i, (p, a) in enumerate(batch):
            if not a:
                out.append(Scored(0.0, 0))
                continue
            positions = torch.arange(len(p) - 1, len(p) + len(a) - 1)
            picked = logp[i, positions, torch.tensor(a)]
            out.append(Scored(float(picked.sum()), len(a)))
    return out
