"""SIGINT and SIGTERM: stop at a safe point, keep every committed shard, exit 130 / 143."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HELD = (signal.SIGINT, signal.SIGTERM)
dropped_on_resume: set[str] = set()  # flags the resume command must leave out (--overwrite)


class Terminated(BaseException):
    """SIGTERM (a scheduler or `kill` asking us to stop), raised like KeyboardInterrupt."""

    exit_code = 143


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def install() -> None:
    """Make SIGTERM unwind the stack like Ctrl-C does, so `finally` blocks run."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends: a shard commit is all or nothing.

    A signal that arrives inside the block is delivered again, to the usual handler, when the
    block ends; if the block raised, its error propagates instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, f: pending.append(s)) for sig in HELD}
    try:
        yield
    except BaseException:
        _restore(previous)  # the block's own error wins over a held signal
        raise
    _restore(previous)
    if pending:
        os.kill(os.getpid(), pending[0])  # the usual handler raises here


def _restore(handlers: dict[int, object]) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
