"""The run-wide prompt filter, fed the prompts of the shards committed before the next one."""

from __future__ import annotations

from sao.config import RunConfig
from sao.stages.filters import PromptFilter
from sao.store import Store, read_shard


class FilterFeed:
    """Keeps a run's `PromptFilter` holding exactly the prompts of the shards before the next.

    Shards are run in increasing order; committed shards are read back on resume, so a resumed
    shard is filtered against the same prompts as in an uninterrupted run.
    """

    def __init__(self, cfg: RunConfig, store: Store) -> None:
        self.config = cfg.filters
        self.store = store
        self.reset()

    def reset(self) -> None:
        """Forget everything, e.g. the prompts a failed shard added; refilled on `before`."""
        self.filter = PromptFilter(self.config)
        self.next = 0  # shards below this are in the filter

    def before(self, index: int) -> PromptFilter | None:
        """The filter for shard `index`, after reading any committed shard before it."""
        if not self.filter.active:
            return None
        files = {s["index"]: s["file"] for s in self.store.manifest["shards"]}
        for earlier in range(self.next, index):
            if earlier in files:
                table = read_shard(self.store.out_dir / files[earlier])
                self.filter.add_all(turns[-1]["content"] for turns in table["prompt"].to_pylist())
        self.next = index + 1
        return self.filter
