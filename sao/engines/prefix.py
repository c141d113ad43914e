"""Grouping of engine requests by shared prefix, so a prefix is computed once per group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def group_by_prefix(
    tokens: Sequence[Sequence[T]], min_shared: int = 16
) -> list[tuple[int, list[int]]]:
    """Group sequences whose common prefix is long; returns (prefix length, indices) per group.

    Sorted sequences put shared prefixes side by side; a sequence joins the open group when it
    keeps the group's whole prefix (or the group has one member and they share `min_shared`).
    Every prefix leaves at least one token of each member to run with the cache.
    """
    order = sorted(range(len(tokens)), key=lambda i: tokens[i])
    groups: list[tuple[int, list[int]]] = []
    for i in order:
        if groups:
            n, members = groups[-1]
            shared = _common_prefix(tokens[members[0]], tokens[i], n)
            if shared == n or (len(members) == 1 and shared >= min_shared):
                groups[-1] = (shared, [*members, i])
                continue
        groups.append((len(tokens[i]), [i]))
    return [(min(n, *(len(tokens[i]) - 1 for i in members)), members) for n, members in groups]


def _common_prefix(a: Sequence[T], b: Sequence[T], limit: int) -> int:
    n = min(len(a), len(b), limit)
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n
