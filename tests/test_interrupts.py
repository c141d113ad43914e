"""Signals held during a commit, failpoints, and the shard layout of extended runs (no model)."""

from __future__ import annotations

import os
import signal

import pytest

from sao import failpoints
from sao.interrupts import Terminated, held, install
from sao.plan import layout


@pytest.fixture
def sigterm_raises():
    """sao's SIGTERM handler, and Python's own for SIGINT whatever an earlier test in this
    process (a library it imported) left there."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    install()
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("sig", "error"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_signal_inside_held_is_delivered_when_the_block_ends(sigterm_raises, sig, error):
    finished = False
    with pytest.raises(error), held():
        os.kill(os.getpid(), sig)
        finished = True  # not interrupted half-way
    assert finished


def test_sigterm_outside_held_unwinds_at_once(sigterm_raises):
    with pytest.raises(Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # not reached: the handler raises first


def test_failpoints_do_nothing_unless_named(monkeypatch):
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.reach("judge", 1)
    monkeypatch.setenv(failpoints.ENV, "raise@judge:1,fail@prompts:0")
    failpoints.reach("judge", 0)  # another shard
    failpoints.reach("responses", 1)  # another point
    with pytest.raises(failpoints.InjectedFault, match="judge:1"):
        failpoints.reach("judge", 1)
    failpoints.reach("judge", 1)  # raise@ fires once
    for _ in range(2):
        with pytest.raises(failpoints.InjectedFault):
            failpoints.reach("prompts", 0)  # fail@ fires every time


def test_layout_cuts_shards_inside_each_segment():
    assert layout(list(range(7)), [7], 2) == [[0, 1], [2, 3], [4, 5], [6]]
    assert layout(list(range(7)), [3, 4], 2) == [[0, 1], [2], [3, 4], [5, 6]]
    assert layout(list(range(8)), [4, 4], 2) == layout(list(range(8)), [8], 2)
