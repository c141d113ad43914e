"""SAIL: prompt / chosen / rejected as plain strings with the policy's chat template applied.

`prompt` is the conversation rendered up to the assistant's header (generation prompt);
`chosen` and `rejected` are what the template adds after it for that assistant turn, end-of-turn
tokens included, so `prompt + chosen` is exactly the rendered conversation.
"""

from __future__ import annotations

import datasets

from sao.adapters.options import ExportOptions, assistant, selected_pairs
from sao.engines.base import render_chat
from sao.errors import SaoError

FEATURES = datasets.Features(
    {
        "prompt": datasets.Value("string"),
        "chosen": datasets.Value("string"),
        "rejected": datasets.Value("string"),
    }
)


def tokenizer(context: dict):
    """The run's model tokenizer (its chat template), loaded once per export."""
    if "tokenizer" not in context["cache"]:
        from transformers import AutoTokenizer

        from sao.models import resolve_model

        path = resolve_model(context["model"]["name"]).path
        loaded = AutoTokenizer.from_pretrained(path)
        if loaded.chat_template is None:
            raise SaoError(f"model {context['model']['name']} has no chat template")
        context["cache"]["tokenizer"] = loaded
    return context["cache"]["tokenizer"]


def completion(tok, prompt: list[dict], text: str, kwargs: dict | None = None) -> tuple[str, str]:
    """(rendered prompt, the rendered assistant turn that follows it), with the template
    variables (`kwargs`) the answers were sampled under."""
    head = render_chat(tok, prompt, kwargs)
    full = tok.apply_chat_template(prompt + assistant(text), tokenize=False, **(kwargs or {}))
    if not full.startswith(head):
        raise SaoError("the chat template renders the prompt differently inside a conversation")
    return head, full[len(head) :]


def rows(record: dict, options: ExportOptions, context: dict) -> list[dict]:
    """One row per pair, as strings."""
    tok = tokenizer(context)
    kwargs = context["config"]["responses"].get("chat_template_kwargs")
    texts = [r["text"] for r in record["responses"]]
    out = []
    for pair in selected_pairs(record, options):
        head, chosen = completion(tok, record["prompt"], texts[pair["chosen"]], kwargs)
        _, rejected = completion(tok, record["prompt"], texts[pair["rejected"]], kwargs)
        out.append({"prompt": head, "chosen": chosen, "rejected": rejected})
    return out
