"""Reasoning ("thinking") text split from what a model says: `<think>…</think>` or the
markers the config names. Only reasoning at the start of a reply counts: a reply that opens
with the opening marker or, when the chat template opened the block itself (DeepSeek-R1's does),
everything up to the first closing marker."""

from __future__ import annotations

DEFAULT_MARKERS = ("<think>", "</think>")


def split_reasoning(
    text: str, markers: tuple[str, str] = DEFAULT_MARKERS, opened: bool = False
) -> tuple[str | None, str]:
    """(reasoning, answer) of one reply; reasoning is None when the reply has none. `opened`:
    the template opened the block before the reply began. A reply whose reasoning never closes
    (cut by max_tokens) is all reasoning: its answer is empty."""
    opening, closing = markers
    head = text.lstrip()
    if head.startswith(opening):
        opened, text = True, head[len(opening) :]
    if not opened:
        return None, text
    end = text.find(closing)
    if end < 0:
        return text.strip(), ""
    return text[:end].strip(), text[end + len(closing) :].strip()


def answer_text(text: str, markers: tuple[str, str] = DEFAULT_MARKERS, opened: bool = False) -> str:
    """The reply without its reasoning."""
    return split_reasoning(text, markers, opened)[1]


def left_open(rendered: str, markers: tuple[str, str] = DEFAULT_MARKERS) -> bool:
    """True when a rendered prompt ends inside a reasoning block (its template opened one)."""
    opening, closing = markers
    return rendered.rfind(opening) > rendered.rfind(closing)
