"""Engine failures as `EngineError`, and the run's engine slot that reloads one after a failure."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from typing import Any

from sao.engines.base import Completion, Engine, Message, Sampling
from sao.errors import EngineError, SaoError, describe


class GuardedEngine:
    """Wraps an engine so that whatever its calls raise (other than a SaoError, which is the
    user's to fix) arrives as an `EngineError`; the pipeline retries those and nothing else."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def chat(self, conversations: list[list[Message]], params: Sampling) -> list[list[Completion]]:
        """The engine's `chat`, its failures as EngineError."""
        return _guarded(self.inner.chat, conversations, params)

    def label_logprobs(
        self, conversations: list[list[Message]], labels: list[str]
    ) -> list[dict[str, float]]:
        """The engine's `label_logprobs`, its failures as EngineError."""
        return _guarded(self.inner.label_logprobs, conversations, labels)

    def close(self) -> None:
        """Close the wrapped engine."""
        self.inner.close()


def _guarded(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except SaoError:
        raise
    except Exception as exc:  # CUDA, HTTP, a dead engine process: each engine has its own
        raise EngineError(describe(exc)) from exc


class EngineSlot:
    """The run's engine: loaded when first needed, dropped after a failure so the next use
    loads a fresh one (a dead vLLM engine process cannot be revived), closed at the end.

    An engine handed in by the caller is used as is and never closed or reloaded.
    """

    def __init__(self, load: Callable[[], Engine], given: Engine | None = None) -> None:
        self.load = load
        self.owned = given is None
        self.engine: Engine | None = None if given is None else GuardedEngine(given)

    def get(self) -> Engine:
        """The engine, loading it if needed."""
        if self.engine is None:
            self.engine = GuardedEngine(self.load())
        return self.engine

    def drop(self) -> None:
        """After a failure: close an owned engine, so the next `get` loads it again."""
        if self.owned and self.engine is not None:
            with contextlib.suppress(Exception):  # a dead engine may fail to close, too
                self.close()

    def close(self) -> None:
        """Release an owned engine (and its memory, before a reload)."""
        if self.owned and self.engine is not None:
            engine, self.engine = self.engine, None
            try:
                engine.close()
            finally:
                gc.collect()
