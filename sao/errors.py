"""The one exception type a user can cause; the CLI prints it as one line and exits non-zero."""


class SaoError(Exception):
    """A problem the user can fix (bad config, bad input file, missing model, unwritable output)."""

    exit_code: int = 2


class EngineFailure(SaoError):
    """The engine kept failing on a shard after every retry; committed shards are intact."""

    exit_code = 3
