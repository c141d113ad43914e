"""Engine failures as `EngineError`, and the run's engine slot that reloads one after a failure."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sao.engines.base import Completion, Engine, Message, Sampling, TemplateKwargs
from sao.errors import EngineError, EngineFailure, RequestRefused, SaoError, describe

# Failures no retry can fix, by class name anywhere in the exception's classes or causes: vLLM's
# argument checks (a prompt longer than the context), the openai client's 4xx, plain argument
# errors. Ray re-raises a replica's error as a class deriving from the original's.
NEVER_SUCCEEDS = {
    "ValueError",
    "TypeError",
    "VLLMValidationError",
    "VLLMClientError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "UnprocessableEntityError",
}
# ValueError and TypeError count only when raised outside sao's own code: in sao they are a bug,
# not a setting the user can fix
GENERIC = {"ValueError", "TypeError"}
SAO_PACKAGE = Path(__file__).resolve().parents[1]
# ... unless the failure is one of these, which a fresh engine or a pause can fix
TRANSIENT = {
    "OutOfMemoryError",
    "EngineDeadError",
    "APIConnectionError",
    "RateLimitError",
    "InternalServerError",
    "RayActorError",
    "ServerUnavailable",
}


class GuardedEngine:
    """Wraps an engine so that whatever its calls raise (other than a SaoError, which is the
    user's to fix) arrives as an `EngineError`; the pipeline retries those and nothing else."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def chat(
        self,
        conversations: list[list[Message]],
        params: Sampling,
        template_kwargs: TemplateKwargs = None,
    ) -> list[list[Completion]]:
        """The engine's `chat`, its failures as EngineError."""
        return _guarded(self.inner.chat, conversations, params, template_kwargs)

    def label_logprobs(
        self,
        conversations: list[list[Message]],
        labels: list[str],
        template_kwargs: TemplateKwargs = None,
    ) -> list[dict[str, float]]:
        """The engine's `label_logprobs`, its failures as EngineError."""
        return _guarded(self.inner.label_logprobs, conversations, labels, template_kwargs)

    def rewards(
        self, conversations: list[list[Message]], template_kwargs: TemplateKwargs = None
    ) -> list[float]:
        """A reward model's `rewards`, its failures as EngineError."""
        if not hasattr(self.inner, "rewards"):
            raise SaoError(f"engine {self.inner.name} is no reward model")
        return _guarded(self.inner.rewards, conversations, template_kwargs)

    def close(self) -> None:
        """Close the wrapped engine."""
        self.inner.close()


def _guarded(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except SaoError:
        raise
    except Exception as exc:  # CUDA, HTTP, a dead engine process: each engine has its own
        if sao_bug(exc):
            raise  # no retry and no setting fixes sao's own bug: it surfaces as it is
        refused = never_succeeds(exc)
        if refused is not None:
            raise RequestRefused.of(describe(refused)) from None
        raise EngineError(describe(exc)) from exc


@contextlib.contextmanager
def failures_as_one_line(what: str) -> Iterator[None]:
    """For commands that do not retry (judge-eval, judge-agreement, --preview): a guarded
    engine's failure ends the command in one line, exit 3."""
    try:
        yield
    except EngineError as exc:
        raise EngineFailure(f"{what} stopped: the engine failed ({exc})") from None


def never_succeeds(exc: BaseException) -> BaseException | None:
    """The exception in `exc`'s chain that no retry can fix, or None when it may be transient."""
    chain: list[BaseException] = []
    seen = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        # what it was raised from, or what it interrupted unless raised `from None`
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    names = [{cls.__name__ for cls in type(e).__mro__} for e in chain]
    if any(n & TRANSIENT for n in names):
        return None
    for e, n in zip(chain, names, strict=True):
        found = n & NEVER_SUCCEEDS
        if found and (found - GENERIC or not raised_in_sao(e)):
            return e
    return None


def sao_bug(exc: BaseException) -> bool:
    """True for a ValueError or TypeError that sao's own code raised (no engine's class)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & GENERIC) and not names & (NEVER_SUCCEEDS - GENERIC) and raised_in_sao(exc)


def raised_in_sao(exc: BaseException) -> bool:
    """True when the innermost frame of `exc`'s traceback is sao's own code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(SAO_PACKAGE)


class EngineSlot:
    """The run's engine: loaded when first needed, dropped after a failure so the next use
    loads a fresh one (a dead vLLM engine process cannot be revived), closed at the end.

    An engine handed in by the caller is used as is and never closed or reloaded.
    """

    def __init__(self, load: Callable[[], Engine], given: Engine | None = None) -> None:
        self.load = load
        self.load_s = 0.0  # seconds spent loading (imports, model load), reloads included
        self.owned = given is None
        self.engine: Engine | None = None if given is None else GuardedEngine(given)

    def get(self) -> Engine:
        """The engine, loading it if needed."""
        if self.engine is None:
            start = time.perf_counter()
            self.engine = GuardedEngine(self.load())
            self.load_s += time.perf_counter() - start
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
