"""Stage 1: each persona role-plays a user and writes one prompt; bad prompts are rejected."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from sao.config import PromptConfig
from sao.engines.base import Completion, Engine, Message
from sao.personas import Persona
from sao.stages import conversation, opens_reasoning, sampling, template_kwargs
from sao.stages.filters import PromptFilter
from sao.templates import Template
from sao.text.reasoning import DEFAULT_MARKERS, answer_text

# "User prompt:", "Message:", "Here is my message:" ... at the start of the output.
_PREFIX = re.compile(
    r"^\s*(?:\*\*)?(?:here(?:'s| is)[^:\n]{0,40}|(?:the\s+)?(?:user\s+)?"
    r"(?:prompt|message|question|request|query)|user|me|person)\s*(?:\*\*)?\s*:\s*(?:\*\*)?",
    re.IGNORECASE,
)
_QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("«", "»"), ("`", "`")]
ECHO_MIN_WORDS = 8  # a run this many words long copied from the persona is an echo


@dataclass
class PromptResult:
    """The kept prompt of one persona (None if every candidate was rejected) and its flags."""

    prompt: str | None
    flags: list[str] = field(default_factory=list)
    tokens: int = 0


def requests(
    personas: list[Persona], template: Template, system: str | None = None
) -> list[list[Message]]:
    """One user turn per persona asking the model to write that persona's message (after the
    stage's system message, when it has one)."""
    return [
        conversation(system, {"role": "user", "content": template.render(persona=p.text)})
        for p in personas
    ]


def clean(text: str) -> str:
    """Strip role-play prefixes and wrapping quotes from a synthesized prompt."""
    text = text.strip()
    for _ in range(3):
        before = text
        text = _PREFIX.sub("", text, count=1).strip()
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[len(left) : len(text) - len(right)].strip()
        if text == before:
            break
    return text


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def echoes_persona(prompt: str, persona: str) -> bool:
    """True when the prompt copies a long run of the persona description (never without one)."""
    a, b = _words(prompt), _words(persona)
    if not b:
        return False
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(
        0, len(a), 0, len(b)
    )
    return match.size >= min(ECHO_MIN_WORDS, max(1, len(b)))


def rejection(text: str, completion: Completion, persona: str, cfg: PromptConfig) -> str | None:
    """Why a cleaned prompt is unusable (empty, truncated, too_long, persona_echo), or None."""
    if len(text) < cfg.min_chars:
        return "empty"
    if completion.finish_reason == "length":
        return "truncated"
    if len(text) > cfg.max_chars:
        return "too_long"
    if echoes_persona(text, persona):
        return "persona_echo"
    return None


def synthesize(
    engine: Engine,
    personas: list[Persona],
    template: Template,
    cfg: PromptConfig,
    seed: int,
    prompt_filter: PromptFilter | None = None,
    markers: tuple[str, str] = DEFAULT_MARKERS,
) -> list[PromptResult]:
    """Sample `cfg.candidates` prompts per persona; keep the first clean one.

    With a `prompt_filter`, a candidate that repeats a prompt kept earlier in the run is
    rejected too ("prompt_rejected:duplicate" and so on), and each kept prompt joins the filter.
    A candidate's reasoning (between `markers`) is no part of the prompt.
    """
    params = sampling(cfg, cfg.candidates, seed)
    asked = requests(personas, template, cfg.system)
    kwargs = template_kwargs(cfg)
    opened = opens_reasoning(engine, asked, kwargs, markers)
    outputs = engine.chat(asked, params, kwargs)
    results = []
    for persona, candidates in zip(personas, outputs, strict=True):
        result = PromptResult(None, tokens=sum(c.num_tokens for c in candidates))
        for completion in candidates:
            text = clean(answer_text(completion.text, markers, opened))
            reason = rejection(text, completion, persona.text, cfg)
            if reason is None and prompt_filter is not None:
                reason = prompt_filter.reason(text)
            if reason is None:
                result.prompt = text
                if prompt_filter is not None:
                    prompt_filter.add(text)
                break
            result.flags.append(f"prompt_rejected:{reason}")
        results.append(result)
    return results
