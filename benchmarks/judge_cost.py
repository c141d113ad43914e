"""Judge cost per comparison in every mode: generated tokens (counted by the engine) and wall time.

A comparison is one probe's two answers judged the way `sao generate` judges a record with K=2.
Every mode reads the same prompts and answers, so the prefix cache is emptied before each mode:
otherwise a mode finds the previous mode's prefills cached and looks cheaper than it is.
Prints one JSON line. `pairwise-logprob` must generate at most one token per order.
Usage: python benchmarks/judge_cost.py [--engine hf] [--probes 32]
"""

from __future__ import annotations

import argparse
import json
import time

from overhead import reset_prefix_cache

from sao.config import EngineConfig, JudgeConfig
from sao.engines import make_engine, resolve_engine_name
from sao.judge_eval import bundled_probes, load_probes
from sao.models import resolve_model
from sao.stages import judge
from sao.templates import Template

MODES = {
    "single-order": None,
    "pairwise-logprob": JudgeConfig(mode="pairwise-logprob"),
    "pairwise-text": JudgeConfig(mode="pairwise-text"),
    "rubric": JudgeConfig(mode="rubric"),
    "rubric-json": JudgeConfig(mode="rubric", rubric_scoring="json", max_tokens=16),
}

CACHE_STATES = {
    True: "emptied before each mode",
    None: "none kept across calls (hf), or out of reach (ray): not emptied",
    False: "the server refused to empty it (start it with VLLM_SERVER_DEV_MODE=1)",
}


def single_order(engine, items, cfg: JudgeConfig) -> int:
    """The one-pass baseline: each comparison judged once, in the order given."""
    labels = (cfg.labels[0], cfg.labels[1])
    template = Template(cfg.template_name())
    convs = [judge.request(p, a, b, template, labels) for p, (a, b) in items]
    return len(judge.logprob_calls(engine, convs, labels, cfg.min_label_mass))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--probes", type=int, default=32)
    args = parser.parse_args()

    name = resolve_engine_name(args.engine)
    engine = make_engine(EngineConfig(name=name), resolve_model(args.model).path, 0)
    probes = load_probes(bundled_probes())[: args.probes]
    items = [(p.prompt, [p.better, p.worse]) for p in probes]
    judge.judge(engine, items[:2], Template(JudgeConfig().template_name()), JudgeConfig())  # warm
    modes = {}
    for mode, cfg in MODES.items():
        # vllm: LLM.reset_prefix_cache(); openai: the server's endpoint (VLLM_SERVER_DEV_MODE=1).
        # hf keeps no cache across calls (its engine shares a prefix only within one call), and
        # Ray's replicas are out of reach: both return None.
        cache = CACHE_STATES[reset_prefix_cache(engine)]
        before, start = engine.generated_tokens, time.perf_counter()
        if cfg is None:
            calls = single_order(engine, items, JudgeConfig())
        else:
            verdicts = judge.judge(engine, items, Template(cfg.template_name()), cfg)
            calls = sum(v.diagnostics.calls for v in verdicts)
        wall = time.perf_counter() - start
        generated = engine.generated_tokens - before
        modes[mode] = {
            "calls_per_comparison": calls / len(items),
            "generated_tokens_per_call": round(generated / calls, 3),
            "generated_tokens_per_comparison": round(generated / len(items), 3),
            "wall_ms_per_comparison": round(1000 * wall / len(items), 1),
        }
    engine.close()
    logprob = modes["pairwise-logprob"]
    print(
        json.dumps(
            {
                "benchmark": "judge_cost",
                "engine": name,
                "model": args.model,
                "comparisons": len(items),
                "modes": modes,
                "prefix_cache": cache,
                "logprob_at_most_one_token_per_order": logprob["generated_tokens_per_call"] <= 1,
            }
        )
    )


if __name__ == "__main__":
    main()
