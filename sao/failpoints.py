"""Named points where a test can crash a real run: the crash-safety tests' only hook.

`SAO_FAILPOINT` holds comma-separated `ACTION@POINT` items. POINT is a name from `POINTS`,
with `:SHARD` for the per-shard ones (`judge:1`). ACTION is `kill` (SIGKILL this process
there, as a power cut or the OOM killer would), `raise` (raise `InjectedFault` the first time
only, as a transient engine error would), `fail` (raise it every time) or `refuse` (raise the
`RequestRefused` an engine's refusal of a request becomes, which no retry can fix).
"""

from __future__ import annotations

import os
import signal

from sao.errors import EngineError, RequestRefused

ENV = "SAO_FAILPOINT"
POINTS = (
    "opened",  # manifest written, engine not loaded yet
    "start",  # a shard begins, nothing computed yet (per shard)
    "prompts",  # its prompts synthesized (per shard)
    "responses",  # its K responses sampled (per shard)
    "judge",  # its answers judged, not yet written (per shard)
    "written",  # its file renamed into place, manifest not yet updated (per shard)
    "committed",  # manifest lists it (per shard)
    "finish",  # every shard committed, run not yet marked complete
    "saved",  # `sao train`: TRL's checkpoint of this step written (per step: `saved:2`)
    "sampled",  # `sao iterate`: a round's anchor answers written, not yet judged (`sampled:1`)
)
_raised: set[str] = set()


class InjectedFault(EngineError):
    """The error a `raise@` or `fail@` failpoint throws, standing in for an engine failure."""


def reach(point: str, shard: int | None = None) -> None:
    """Act on `point` if SAO_FAILPOINT names it; otherwise do nothing (the normal case)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    here = point if shard is None else f"{point}:{shard}"
    for item in spec.split(","):
        action, _, target = item.strip().partition("@")
        if target != here:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "refuse":
            raise RequestRefused.of(f"injected refusal at {here}")
        if action == "fail" or (action == "raise" and item not in _raised):
            _raised.add(item)
            raise InjectedFault(f"injected fault at {here}")
