"""Every judge mode on the embedded model through one engine; prints one JSON line.

Run as a script (vLLM needs a `__main__` guard): python tests/judge_modes.py ENGINE [PROBES [DTYPE]]
Items are four answers per shipped probe (better, worse, and two cut-down versions), judged in
each mode as the pipeline does; the default mode again with every item's answers reversed;
then `judge-eval` on the first probes in every mode.
"""

import json
import sys

from sao.config import EngineConfig, JudgeConfig
from sao.engines import make_engine
from sao.judge_eval import MODES, bundled_probes, evaluate, load_probes
from sao.models import resolve_model
from sao.stages import judge
from sao.templates import Template

CASES = {
    "logprob": {"mode": "pairwise-logprob"},
    "logprob-budget": {"mode": "pairwise-logprob", "opponents": 1},
    "text": {"mode": "pairwise-text"},
    "rubric": {"mode": "rubric"},
    "rubric-json": {"mode": "rubric", "rubric_scoring": "json", "max_tokens": 16},
}

if __name__ == "__main__":
    dtype = sys.argv[3] if len(sys.argv) > 3 else "auto"
    engine = make_engine(
        EngineConfig(name=sys.argv[1], dtype=dtype), resolve_model("smollm2-135m-instruct").path, 0
    )
    probes = load_probes(bundled_probes())
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    picked = probes[::16][:size]  # one probe of each kind, the first `size` kinds
    items = [
        (p.prompt, [p.better, p.worse, p.better[: len(p.better) // 2], p.worse.upper()])
        for p in picked
    ]
    out = {"engine": sys.argv[1], "cases": {}}
    for name, settings in CASES.items():
        cfg = JudgeConfig(**settings)
        before = engine.generated_tokens
        verdicts = judge.judge(engine, items, Template(cfg.template_name()), cfg)
        out["cases"][name] = {
            "config": cfg.model_dump(mode="json"),
            "engine_generated_tokens": engine.generated_tokens - before,
            "records": [
                {
                    "responses": [{"text": t} for t in texts],
                    "pref_matrix": v.matrix,
                    "pref_estimated": v.estimated,
                    "scores": v.scores,
                    "judgments": v.judgments,
                    "judge_stats": v.diagnostics.record(),
                    "flags": v.flags,
                }
                for (_, texts), v in zip(items, verdicts, strict=True)
            ],
        }
    # the default judge again, each item forward and with its answers reversed, in one batch
    default = JudgeConfig()
    both = items + [(prompt, texts[::-1]) for prompt, texts in items]
    verdicts = judge.judge(engine, both, Template(default.template_name()), default)
    out["reversal"] = {
        "forward": [v.matrix for v in verdicts[: len(items)]],
        "reversed": [v.matrix for v in verdicts[len(items) :]],
    }
    out["eval"] = evaluate(engine, probes[:size], JudgeConfig(), list(MODES))
    engine.close()
    print(json.dumps(out))
