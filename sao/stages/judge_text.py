"""Text verdicts for servers without log-probabilities: greedy replies, parsed strictly.

The reply must be the label alone ("A") or contain `Verdict: A`; a reply naming both labels,
neither, or anything else is `unparsed` and counted, never guessed.
"""

from __future__ import annotations

import re

from sao.engines.base import Engine, Message, Sampling, TemplateKwargs
from sao.stages import opens_reasoning
from sao.stages.verdicts import Call
from sao.text.reasoning import DEFAULT_MARKERS, answer_text


def parse_verdict(text: str, labels: tuple[str, str]) -> str:
    """ "first", "second" or "unparsed" for one judge reply."""
    names = "|".join(re.escape(label) for label in labels)
    alone = re.fullmatch(rf"\s*\**\s*({names})\s*\**\s*[.!]?\s*", text)
    found = (
        {alone.group(1)}
        if alone
        else set(re.findall(rf"(?i:verdict)\s*[:=]\s*[*\"'(\[]*\s*({names})\b", text))
    )
    if len(found) != 1:
        return "unparsed"
    return "first" if found.pop() == labels[0] else "second"


def text_calls(
    engine: Engine,
    conversations: list[list[Message]],
    labels: tuple[str, str],
    max_tokens: int,
    kwargs: TemplateKwargs = None,
    markers: tuple[str, str] = DEFAULT_MARKERS,
) -> list[Call]:
    """One greedy reply per judge conversation, parsed into a single-order verdict; reasoning
    (between `markers`) is never read as one. `kwargs` go to the chat template."""
    params = Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    replies = engine.chat(conversations, params, kwargs) if conversations else []
    opened = opens_reasoning(engine, conversations, kwargs, markers)
    calls = []
    for (reply,) in replies:
        verdict = parse_verdict(answer_text(reply.text, markers, opened), labels)
        p_first = {"first": 1.0, "second": 0.0}.get(verdict)
        calls.append(
            Call(verdict=verdict, tokens=reply.num_tokens, raw=reply.text, p_first=p_first)
        )
    return calls
