"""`engine.vllm_args` checked against the installed vLLM before anything loads."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from sao.engines.hardware import set_vllm_cpu_env
from sao.errors import SaoError


def check_vllm_args(args: dict[str, Any], where: str = "engine.vllm_args") -> None:
    """SaoError naming the first key the installed vLLM's engine does not take.

    Without vLLM here (a Ray driver may lack it) the check is left to the replicas' vLLM.
    """
    if not args:
        return
    set_vllm_cpu_env()  # the engine sets these before its own import: quiet logs
    try:
        import vllm
        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return
    known = {field.name for field in dataclasses.fields(EngineArgs)}
    for key in args:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SaoError(f"{where}: vLLM {vllm.__version__} has no argument '{key}'{hint}")
