"""Reasoning ("thinking") text split from what a model says: `<think>…</think>` or the
markers the config names. Only reasoning at the start of a reply counts: a reply that opens
with the opening marker, or one whose template opened it (the reply then holds the closing
marker alone)."""

from __future__ import annotations

DEFAULT_MARKERS = ("<think>", "</think>")


def split_reasoning(
    text: str, markers: tuple[str, str] = DEFAULT_MARKERS
) -> tuple[str | None, str]:
    """(reasoning, answer) of one reply; reasoning is None when the reply has none. A reply
    whose reasoning never closes (cut by max_tokens) is all reasoning: its answer is empty."""
    opening, closing = markers
    head = text.lstrip()
    if head.startswith(opening):
        body = head[len(opening) :]
        end = body.find(closing)
        if end < 0:
            return body.strip(), ""
        return body[:end].strip(), body[end + len(closing) :].strip()
    end = text.find(closing)
    if end >= 0 and opening not in text[:end]:  # the chat template opened the reasoning
        return text[:end].strip(), text[end + len(closing) :].strip()
    return None, text


def answer_text(text: str, markers: tuple[str, str] = DEFAULT_MARKERS) -> str:
    """The reply without its reasoning."""
    return split_reasoning(text, markers)[1]
