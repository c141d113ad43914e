"""Judge the first record of a run again, forward and with its responses reversed; print JSON.

Run as a script (vLLM needs a `__main__` guard): python tests/judge_reversal.py ENGINE OUT
"""

import json
import sys

from sao.config import RunConfig
from sao.engines import make_engine
from sao.models import resolve_model
from sao.stages import judge
from sao.store import read_manifest, read_records
from sao.templates import Template

if __name__ == "__main__":
    engine_name, out = sys.argv[1], sys.argv[2]
    manifest = read_manifest(out)
    cfg = RunConfig.model_validate({**manifest["config"], "output": {}})
    record = read_records(out).to_pylist()[0]
    settings = cfg.engine.model_copy(update={"name": engine_name})  # the run's dtype too
    engine = make_engine(settings, resolve_model(cfg.model).path, cfg.seed)
    template = Template(cfg.judge.template_name())
    prompt = record["prompt"][-1]["content"]
    texts = [r["text"] for r in record["responses"]]
    forward, backward = judge.judge(
        engine, [(prompt, texts), (prompt, texts[::-1])], template, cfg.judge
    )
    engine.close()
    print(
        json.dumps(
            {
                "stored": record["pref_matrix"],
                "forward": forward.matrix,
                "reversed": backward.matrix,
            }
        )
    )
