"""Seeds on the real vLLM engine: a stored seed reproduces its answer, and answers are independent.

Run as a script (vLLM needs a `__main__` guard):
    python tests/seed_independence.py RUN_DIR [VLLM_ARGS_JSON]
(the manifest keeps only the vllm_args that change samples; the rest come as the argument)
Prints one JSON line:
- "vllm_args": the run's `engine.vllm_args` as the loaded engine holds them;
- "refused": the one-line error a prompt longer than the context gets through sao's engine
  guard (it must stop the run, not be retried);
- "regenerated": for a few answers of the run, the stored text and the text of one new n=1
  request carrying only that answer's stored seed;
- "old" / "new": how often answers that the scheme before issue 14 seeded alike (answer j+1 of
  prompt i and answer j of prompt i+1) open with the same word, against answers of the same
  neighbouring prompts that never shared a seed (answer j of prompts i and i+1), on 64 similar
  requests with K=8, 8 tokens each. "old" sends the requests as that scheme did (request i:
  seed base + i, n = K), written here against vLLM's own API; "new" runs sao's response stage.
"""

import json
import sys

from sao.config import ResponseConfig, RunConfig
from sao.engines import make_engine
from sao.engines.base import Sampling
from sao.engines.guard import GuardedEngine
from sao.errors import RequestRefused
from sao.models import resolve_model
from sao.stages import responses
from sao.store import read_manifest, read_records

K, BASE, WORDS, TOKENS = 8, 1234, 1, 8  # TOKENS: the stage minimum, plenty for one word
TOPICS = (
    "gardening", "running", "baking bread", "saving money", "learning French", "painting",
    "camping", "chess", "cycling", "cooking rice", "writing essays", "public speaking",
    "studying", "sleeping well", "photography", "swimming", "knitting", "budgeting",
    "hiking", "fishing", "yoga", "coding", "reading more", "meditation", "drawing",
    "travelling light", "making coffee", "job interviews", "moving house", "birdwatching",
    "playing guitar", "keeping houseplants",
)  # fmt: skip
# Similar requests: their answers start from similar distributions, where shared sampling noise
# shows most (on unrelated questions it hardly changes the first word).
PROMPTS = [f"Give me one tip for {t}." for t in TOPICS] + [
    f"What is hard about {t}?" for t in TOPICS
]


def opening(text: str) -> tuple[str, ...]:
    """The answer's first word, lower-cased, without punctuation around it."""
    return tuple(w.strip(".,:;!?\"'*#").lower() for w in text.split()[:WORDS])


def agreement(texts: list[list[str]]) -> dict:
    """How often formerly seed-sharing answers open with the same word, and never-sharing
    answers of the same neighbouring prompts."""
    shared = [(i, j + 1, i + 1, j) for i in range(len(texts) - 1) for j in range(K - 1)]
    apart = [(i, j, i + 1, j) for i in range(len(texts) - 1) for j in range(K)]

    def rate(pairs: list[tuple[int, int, int, int]]) -> dict:
        same = sum(opening(texts[a][b]) == opening(texts[c][d]) for a, b, c, d in pairs)
        return {"agree": same, "pairs": len(pairs), "rate": same / len(pairs)}

    return {"formerly_shared": rate(shared), "never_shared": rate(apart)}


if __name__ == "__main__":
    out = sys.argv[1]
    cfg = RunConfig.model_validate({**read_manifest(out)["config"], "output": {}})
    if len(sys.argv) > 2:
        cfg.engine.vllm_args = json.loads(sys.argv[2])
    engine = make_engine(cfg.engine, resolve_model(cfg.model).path, cfg.seed)
    records = read_records(out).to_pylist()
    regenerated = []
    for rec in records[:2]:
        answer = rec["responses"][-1]  # the last of K: the one the old scheme shared onwards
        params = Sampling(
            n=1,
            temperature=cfg.responses.temperature,
            top_p=cfg.responses.top_p,
            max_tokens=cfg.responses.max_tokens,
            seed=answer["seed"],
        )
        (again,) = engine.chat([rec["prompt"]], params)
        regenerated.append({"stored": answer["text"], "again": again[0].text})

    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    stage = ResponseConfig(samples=K, temperature=0.8, max_tokens=TOKENS)
    new = responses.sample(engine, prompts, stage, BASE)
    vllm = sys.modules["vllm"]
    old_params = [
        vllm.SamplingParams(n=K, temperature=0.8, top_p=1.0, max_tokens=TOKENS, seed=BASE + i)
        for i in range(len(prompts))
    ]
    old = engine.llm.chat(prompts, sampling_params=old_params, use_tqdm=False)
    refused = None
    too_long = [[{"role": "user", "content": "word " * (cfg.engine.max_model_len + 100)}]]
    try:
        GuardedEngine(engine).chat(too_long, Sampling(max_tokens=8))
    except RequestRefused as exc:
        refused = str(exc)
    config = engine.llm.llm_engine.vllm_config  # what engine.vllm_args reached
    applied = {
        "max_num_seqs": config.scheduler_config.max_num_seqs,
        "enable_prefix_caching": config.cache_config.enable_prefix_caching,
    }
    engine.close()
    print(
        json.dumps(
            {
                "vllm_args": applied,
                "regenerated": regenerated,
                "refused": refused,
                "old": agreement([[c.text for c in o.outputs] for o in old]),
                "new": agreement([[c.text for c in comps] for comps in new]),
            }
        )
    )
