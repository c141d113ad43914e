"""Bare OpenAI client: the requests of a sao run sent to the same server with `openai`.

One chat-completions request per conversation with `n`, its recorded seed, temperature, top_p
and max_tokens; `concurrency` requests in flight on a thread pool; tokens from `usage`. The
judge: one request per conversation for one greedy token with `top_logprobs` (20). No prefix
waves, no retries, no sao.
Usage: python benchmarks/bare_openai.py REQUESTS.json   (prints one JSON line)
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from bare_common import Clock, Stage, load_requests, run_stages

TOP_LOGPROBS = 20


def main() -> None:
    request = load_requests(sys.argv[1])
    settings = request["settings"]
    clock = Clock()
    import openai

    clock.phase("import")
    client = openai.OpenAI(
        base_url=settings["base_url"], api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY"
    )
    pool = ThreadPoolExecutor(max_workers=settings["concurrency"])
    model = request["model"]
    clock.phase("engine_start")

    def chat(stage: Stage) -> int:
        def one(k: int) -> int:
            response = client.chat.completions.create(
                model=model,
                messages=stage["conversations"][k],
                n=stage["n"],
                temperature=stage["temperature"],
                top_p=stage["top_p"],
                max_tokens=stage["max_tokens"],
                seed=stage["seeds"][k],
            )
            return response.usage.completion_tokens

        return sum(pool.map(one, range(len(stage["conversations"]))))

    def judge(stage: Stage) -> int:
        def one(conversation: list) -> int:
            response = client.chat.completions.create(
                model=model,
                messages=conversation,
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=TOP_LOGPROBS,
            )
            return int(bool(response.choices[0].logprobs.content[0].top_logprobs))

        return sum(pool.map(one, stage["conversations"]))

    run_stages(request, clock, chat, judge, openai_version=openai.__version__)
    pool.shutdown()


if __name__ == "__main__":
    main()
