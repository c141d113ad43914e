"""Where the start-up seconds go: each import, model resolution and engine start, timed apart.

Every figure comes from a fresh Python process, which first runs its set-up untimed (the
imports a step needs, so that an engine's start is timed without importing its library) and
then times the step alone. `python` is the bare interpreter start, for scale. Files read
earlier stay in the page cache, so a figure is a warm start unless it runs first.
Prints one JSON line. Usage: python benchmarks/startup.py [--engines hf vllm] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ENGINE_SETUP = """
import {libraries}
from sao.config import EngineConfig
from sao.engines import make_engine
from sao.models import resolve_model
path = resolve_model({model!r}).path
"""
ENGINE_LIBRARIES = {"hf": "torch, transformers", "vllm": "torch, vllm"}


def steps(model: str, engines: list[str]) -> dict[str, tuple[str, str]]:
    """Name → (untimed set-up, timed code)."""
    out = {
        "import_sao_cli": ("", "import sao.cli"),
        "import_torch": ("", "import torch"),
        "import_transformers": ("", "import transformers"),
        "import_vllm": ("", "import vllm"),
        "resolve_model": ("from sao.models import resolve_model", f"resolve_model({model!r})"),
    }
    for name in engines:
        setup = ENGINE_SETUP.format(libraries=ENGINE_LIBRARIES[name], model=model)
        out[f"engine_{name}"] = (setup, f"make_engine(EngineConfig(name={name!r}), path, 0)")
    return out


def timed(setup: str, code: str) -> float:
    """Seconds `code` takes in a fresh process, after `setup` ran there."""
    script = f"{setup}\nimport time\n_t = time.perf_counter()\n{code}\n"
    script += "print('SECONDS', time.perf_counter() - _t, flush=True)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SECONDS ")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:]
        sys.exit(f"timing {code!r} failed ({proc.returncode}): {tail}")
    return float(lines[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["hf", "vllm"], choices=["hf", "vllm"])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    seconds = {"python": round(time.perf_counter() - start, 3)}
    for name, (setup, code) in steps(args.model, args.engines).items():
        seconds[name] = round(timed(setup, code), 3)
    print(json.dumps({"benchmark": "startup", "model": args.model, "seconds": seconds}))


if __name__ == "__main__":
    main()
