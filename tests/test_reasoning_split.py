"""A reply's reasoning split from its answer (pure text logic)."""

from __future__ import annotations

import pytest

from sao.text.reasoning import split_reasoning

CASES = [
    ("<think>\nplan it\n</think>\n\nBlue.", ("plan it", "Blue.")),
    ("  <think>a</think>b", ("a", "b")),
    ("plan it</think>\n\nBlue.", ("plan it", "Blue.")),  # the template opened the reasoning
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
