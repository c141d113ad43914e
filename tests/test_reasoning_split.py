"""A reply's reasoning split from its answer (pure text logic)."""

from __future__ import annotations

import pytest

from sao.text.reasoning import left_open, split_reasoning

CASES = [
    ("<think>\nplan it\n</think>\n\nBlue.", ("plan it", "Blue.")),
    ("  <think>a</think>b", ("a", "b")),
    ("Close it with </think> and go on.", (None, "Close it with </think> and go on.")),
    ("<think>\nstill thinking when cut", ("still thinking when cut", "")),
    ("Blue.", (None, "Blue.")),
    (
        "Write <think> tags like this: <think>x</think>",
        (None, "Write <think> tags like this: <think>x</think>"),
    ),
    ("<think>\n\n</think>\n\nBlue.", ("", "Blue.")),
]


@pytest.mark.parametrize(("reply", "expected"), CASES)
def test_reasoning_is_split_only_where_the_reply_opens_with_it(reply, expected):
    assert split_reasoning(reply) == expected


def test_the_markers_are_the_configs():
    assert split_reasoning("[R]why[/R] so", ("[R]", "[/R]")) == ("why", "so")
    assert split_reasoning("<think>x</think>y", ("[R]", "[/R]")) == (None, "<think>x</think>y")


def test_a_template_that_opened_the_block_makes_the_head_reasoning():
    assert split_reasoning("plan it</think>\n\nBlue.", opened=True) == ("plan it", "Blue.")
    assert split_reasoning("still thinking", opened=True) == ("still thinking", "")


def test_a_rendered_prompt_left_inside_a_block_is_told_from_a_closed_one():
    assert left_open("<|user|>hi<|assistant|><think>\n")
    assert not left_open("<|user|>hi<|assistant|><think>\n\n</think>\n\n")
    assert not left_open("<|user|>hi<|assistant|>")


def test_only_what_the_generation_prompt_adds_can_open_a_block():
    """A marker inside a message is no block; the R1-style template's own `<think>` is."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from sao.models import resolve_model
    from sao.stages import opens_reasoning
    from tests.conftest import thinking_template

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    mentions = [[{"role": "system", "content": "Never write <think> tags."}]]
    mentions[0].append({"role": "user", "content": "Say <think> twice."})
    plain = SimpleNamespace(tokenizer=tokenizer)
    assert not opens_reasoning(plain, mentions, None, ("<think>", "</think>"))
    tokenizer.chat_template = thinking_template(tokenizer.chat_template)
    assert opens_reasoning(plain, mentions, None, ("<think>", "</think>"))
    assert not opens_reasoning(plain, mentions, {"enable_thinking": False}, ("<think>", "</think>"))
