"""A reward model through transformers: `AutoModelForSequenceClassification`, one score per
(prompt, answer) conversation, rendered with the reward model's own chat template."""

from __future__ import annotations

import os
from typing import Any

from sao.engines.base import (
    Completion,
    Message,
    Sampling,
    TemplateKwargs,
    require_chat_template,
)
from sao.engines.hardware import resolve_dtype
from sao.errors import SaoError


class RewardEngine:
    """Scores whole conversations; it writes no text and reads no labels."""

    name = "hf-reward"
    supports_logprobs = False
    supports_rewards = True

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        batch_size: int = 32,
        revision: str | None = None,
        hf_args: dict[str, Any] | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self._torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision)
        require_chat_template(self.tokenizer, model_path)
        hf_args = hf_args or {}
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_path,
            dtype=getattr(torch, resolve_dtype(dtype, gpu=self.device == "cuda")),
            revision=revision,
            **hf_args,
        )
        if "device_map" in hf_args:
            self.device = str(self.model.get_input_embeddings().weight.device)
        else:
            self.model.to(self.device)
        self.model.eval()
        self.generated_tokens = 0

    def rewards(
        self, conversations: list[list[Message]], template_kwargs: TemplateKwargs = None
    ) -> list[float]:
        """The reward of each conversation (a user turn and the answer as the assistant's).

        Batches are padded on the right with a token id that occurs in none of their
        conversations, so the model's own pooling (the last non-pad token) finds each
        conversation's true end whatever its pad token is.
        """
        torch = self._torch
        ids = [
            self.tokenizer.apply_chat_template(
                c, tokenize=True, return_dict=True, **(template_kwargs or {})
            )["input_ids"]
            for c in conversations
        ]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        scores: list[float] = [0.0] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            seqs = [ids[i] for i in batch]
            pad = unused_token(seqs, self.model.config.vocab_size)
            width = max(len(s) for s in seqs)
            input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
            self.model.config.pad_token_id = pad
            with torch.inference_mode():
                out = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
                )
            values = getattr(out, "score", None)  # ArmoRM-style heads name their output score
            values = out.logits[:, 0] if values is None else values.reshape(len(seqs), -1)[:, 0]
            for i, value in zip(batch, values.float().tolist(), strict=True):
                scores[i] = value
        return scores

    def chat(
        self,
        conversations: list[list[Message]],
        params: Sampling,
        template_kwargs: TemplateKwargs = None,
    ) -> list[list[Completion]]:
        """A reward model writes nothing."""
        raise SaoError("a reward model only scores answers: it cannot write text")

    def label_logprobs(
        self,
        conversations: list[list[Message]],
        labels: list[str],
        template_kwargs: TemplateKwargs = None,
    ) -> list[dict[str, float]]:
        """A reward model reads no verdict labels."""
        raise SaoError("a reward model gives rewards, not label log-probabilities")

    def close(self) -> None:
        """Release the model."""
        self.model = None


def unused_token(seqs: list[list[int]], vocab_size: int) -> int:
    """The highest token id that none of `seqs` contains."""
    seen = {t for s in seqs for t in s}
    for candidate in range(vocab_size - 1, -1, -1):
        if candidate not in seen:
            return candidate
    raise SaoError("no token id is free to pad this batch with")
