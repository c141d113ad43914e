"""Prompt cleaning and rejection rules of the prompt stage."""

import pytest

from sao.config import PromptConfig
from sao.engines.base import Completion
from sao.stages.prompts import clean, echoes_persona, rejection

PERSONA = (
    "A night-shift ICU nurse in Porto in her late thirties who keeps a balcony herb garden; "
    "she is wry and impatient with jargon."
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('User prompt: "How do I repot basil?"', "How do I repot basil?"),
        ("**Message:** Can you explain APR?", "Can you explain APR?"),
        (
            "Here is my message: 'What is a good night-shift snack?'",
            "What is a good night-shift snack?",
        ),
        ("“Why do tomatoes split?”", "Why do tomatoes split?"),
        ("Prompt: Question: How long to boil an egg?", "How long to boil an egg?"),
        ("How do I repot basil?", "How do I repot basil?"),
    ],
)
def test_clean_strips_prefixes_and_quotes(raw, expected):
    assert clean(raw) == expected


def done(text: str, finish: str = "stop") -> Completion:
    return Completion(text=text, finish_reason=finish, num_tokens=len(text.split()))


def test_rejection_reasons():
    cfg = PromptConfig(min_chars=12, max_chars=60)
    assert rejection("", done(""), PERSONA, cfg) == "empty"
    assert rejection("Why?", done("Why?"), PERSONA, cfg) == "empty"
    text = "How do I keep basil alive on a windy balcony"
    assert rejection(text, done(text, "length"), PERSONA, cfg) == "truncated"
    long = "Please explain " + "very " * 20 + "slowly."
    assert rejection(long, done(long), PERSONA, cfg) == "too_long"
    assert rejection(text, done(text), PERSONA, cfg) is None


def test_persona_echo():
    echo = "I am a night-shift ICU nurse in Porto in her late thirties who keeps a garden."
    assert echoes_persona(echo, PERSONA)
    assert rejection(echo, done(echo), PERSONA, PromptConfig()) == "persona_echo"
    assert not echoes_persona("What herbs grow well on a shady balcony in Porto?", PERSONA)
