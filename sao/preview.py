"""`sao generate --preview N`: N personas through every stage, shown, nothing written.

The N personas are the run's first N, as shard 0 would carry them (same stage seeds, same
prompt filter), so a preview of a run's first shard shows the records that run would write.
"""

from __future__ import annotations

from rich.console import Console

from sao.config import RunConfig
from sao.engines.guard import failures_as_one_line
from sao.pipeline import engine_slots, prepare
from sao.shard import run_shard
from sao.stages.filters import PromptFilter


def preview(cfg: RunConfig, count: int, console: Console) -> list[dict]:
    """The records of the run's first `count` personas; no output folder is touched."""
    ready = prepare(cfg, load=True, mode="overwrite", write=False)  # no earlier run consulted
    personas = ready.chosen[:count]
    prompt_filter = PromptFilter(cfg.filters)
    slot, judge_slot = engine_slots(cfg, ready, console)
    try:
        with failures_as_one_line("the preview"), console.status(f"previewing {len(personas)}"):
            records, _ = run_shard(
                slot.get(),
                cfg,
                0,
                personas,
                ready.templates,
                None,
                prompt_filter if prompt_filter.active else None,
                judge_slot.get(),
            )
    finally:
        slot.close()
        judge_slot.close()
    return records
