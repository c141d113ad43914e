"""The one exception type a user can cause; the CLI prints it as one line and exits non-zero."""

from __future__ import annotations


class SaoError(Exception):
    """A problem the user can fix (bad config, bad input file, missing model, unwritable output)."""

    exit_code: int = 2


class EngineFailure(SaoError):
    """The engine kept failing on a shard after every retry; committed shards are intact."""

    exit_code = 3


class RequestRefused(SaoError):
    """The engine refused a request and always will (a prompt longer than the context, an
    argument it rejects, a 4xx): the run stops at once instead of retrying."""

    exit_code = 2

    @classmethod
    def of(cls, reason: str) -> RequestRefused:
        """The refusal that stops a run, `reason` naming what the engine refused."""
        return cls(
            f"the engine refused a request and would again ({reason}); "
            "committed shards are kept: fix the setting and rerun the same command"
        )


class EngineError(RuntimeError):
    """An engine call failed (CUDA, a dead engine process, a server error); the shard reruns."""


def describe(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
