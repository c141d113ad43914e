"""Log-likelihoods of answers under a model, read from one forward pass per batch.

The KL estimates and the probe check need log π(y | x) for answers another model wrote, so
this scores with plain transformers (every model of a loop shares the starting tokenizer).
An answer is scored as the text the engine returned, tokenized again, followed by the chat
template's end-of-turn token when the answer ended there: the engines return text, not token
ids, so a sampled sequence whose re-tokenization differs (or whose engine trimmed spaces) is
scored as its canonical tokenization.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sao.engines.base import Message, TemplateKwargs, render_chat
from sao.errors import SaoError, describe

BATCH = 8
PROBE_TEXT = "sao-end-of-turn-probe"


@dataclass(frozen=True)
class Scored:
    """An answer's summed log-probability under a model, over `tokens` tokens."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """Length-normalised: the mean log-probability per token."""
        return self.logprob / self.tokens if self.tokens else 0.0


class Scorer:
    """A model and its tokenizer, loaded for scoring; `release()` frees them."""

    def __init__(self, path: str, revision: str | None, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        self.model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, dtype=getattr(torch, dtype)
        ).to(device)
        self.model.eval()
        self.end_of_turn = end_of_turn_id(self.tokenizer)

    def release(self) -> None:
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def score(
        self, items: list[tuple[list[Message], str, bool]], kwargs: TemplateKwargs = None
    ) -> list[Scored]:
        """log π(answer | conversation) of each (conversation, answer, ended) item."""
        import torch

        tok = self.tokenizer
        rows = []
        for conversation, text, ended in items:
            prompt = list(render_chat(tok, conversation, kwargs, tokenize=True))
            answer = tok(text, add_special_tokens=False)["input_ids"]
            if ended and self.end_of_turn is not None:
                answer = [*answer, self.end_of_turn]
            rows.append((prompt, answer))
        out: list[Scored] = []
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            width = max(len(p) + len(a) for p, a in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (p, a) in enumerate(batch):
                ids[i, : len(p) + len(a)] = torch.tensor(p + a)
                mask[i, : len(p) + len(a)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                for i, (p, a) in enumerate(batch):
                    if not a:
                        out.append(Scored(0.0, 0))
                        continue
                    # only the answer's positions, normalised on the device
                    rows_logits = logits[i, len(p) - 1 : len(p) + len(a) - 1].float()
                    target = torch.tensor(a, device=device)
                    picked = rows_logits.gather(1, target[:, None])[:, 0]
                    logp = picked - torch.logsumexp(rows_logits, dim=-1)
                    out.append(Scored(float(logp.sum()), len(a)))
            del logits
        return out


@contextmanager
def scorer(path: str, revision: str | None, dtype: str) -> Iterator[Scorer]:
    """A Scorer for the `with` block, its memory released after it; a model that cannot load,
    or memory that runs out, as one line."""
    try:
        loaded = Scorer(path, revision, dtype)
    except (OSError, ValueError) as exc:
        raise SaoError(f"cannot load {path} to score answers: {describe(exc)}") from None
    except RuntimeError as exc:
        if not out_of_memory(exc):
            raise
        raise SaoError(f"out of memory loading {path} to score answers") from None
    try:
        yield loaded
    except RuntimeError as exc:
        if not out_of_memory(exc):
            raise
        raise SaoError(
            f"out of memory scoring answers under {path}: lower iterate.eval.samples or "
            "iterate.anchors, or free the device, and run the same command"
        ) from None
    finally:
        loaded.release()


def out_of_memory(exc: RuntimeError) -> bool:
    """CUDA's OutOfMemoryError (a RuntimeError), or the CPU allocator's failure."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in str(exc)


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token the chat template closes an assistant turn with (what a model that ended its
    answer generated last), else the tokenizer's end-of-sequence token."""
    turns = [{"role": "user", "content": "?"}, {"role": "assistant", "content": PROBE_TEXT}]
    try:
        text = tokenizer.apply_chat_template(turns, tokenize=False)
    except Exception:  # a template that cannot render this conversation: fall back
        return tokenizer.eos_token_id
    after = text.split(PROBE_TEXT, 1)[-1] if PROBE_TEXT in text else ""
    ids = tokenizer(after.lstrip(" "), add_special_tokens=False)["input_ids"] if after else []
    return ids[0] if ids else tokenizer.eos_token_id
