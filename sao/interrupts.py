"""SIGINT and SIGTERM: stop at a safe point, keep every committed shard, exit 130 / 143."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HELD = (signal.SIGINT, signal.SIGTERM)


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

    A signal that arrives inside the block is delivered again, to the usual handler, on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, f: pending.append(s)) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            os.kill(os.getpid(), sig)
