"""A shard's engine failures: rerun after a back-off, up to `engine.retries` times."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console

from sao.config import RunConfig
from sao.errors import EngineError, EngineFailure, describe
from sao.store import Store

T = TypeVar("T")


def with_retries(
    attempt: Callable[[], T],
    undo: Callable[[], None],
    cfg: RunConfig,
    index: int,
    store: Store,
    console: Console,
) -> T:
    """Run one shard; an engine error reruns it after a back-off, up to `engine.retries` times.

    A shard is all or nothing and its seeds are fixed, so a rerun gives the same records.
    """
    retries, backoff = cfg.engine.retries, cfg.engine.retry_backoff_s
    for tries in range(retries + 1):
        try:
            return attempt()
        except EngineError as exc:
            undo()
            reason = describe(exc)
            if tries == retries:
                kept = len(store.committed())
                raise EngineFailure(
                    f"engine failed on shard {index} after {retries + 1} attempts ({reason}); "
                    f"{kept} committed shards are kept, rerun the same command to resume"
                ) from None
            delay = backoff * 2**tries
            console.print(
                f"engine error on shard {index} ({reason}): "
                f"retry {tries + 1} of {retries} in {delay:g} s",
                soft_wrap=True,
                markup=False,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")
