"""Seeds on the real vLLM engine: a stored seed reproduces its answer, and answers are independent.

Run as a script (vLLM needs a `__main__` guard): python tests/seed_independence.py RUN_DIR
Prints one JSON line:
- "regenerated": for a few answers of the run, the stored text and the text of one new n=1
  request carrying only that answer's stored seed;
- "old" / "new": the first-word agreement of answers that the scheme before issue 14 seeded
  alike (answer j+1 of prompt i and answer j of prompt i+1) against answers of the same
  neighbouring prompts that never shared a seed (answer j of prompts i and i+1), on the 64
  probe prompts with K=4. "old" sends the requests as that scheme did (request i: seed base + i,
  n = K), written here against vLLM's own API; "new" runs sao's response stage.
"""

import json
import sys

from sao.config import ResponseConfig, RunConfig
from sao.engines import make_engine
from sao.engines.base import Sampling
from sao.judge_eval import bundled_probes, load_probes
from sao.models import resolve_model
from sao.stages import responses
from sao.store import read_manifest, read_records

K, BASE = 4, 1234


def first_word(text: str) -> str:
    """The answer's first word, lower-cased, without punctuation around it."""
    words = text.split()
    return words[0].strip(".,:;!?\"'*#").lower() if words else ""


def agreement(texts: list[list[str]]) -> dict:
    """First-word agreement of formerly seed-sharing answers and of never-sharing ones."""
    shared = [(i, j + 1, i + 1, j) for i in range(len(texts) - 1) for j in range(K - 1)]
    apart = [(i, j, i + 1, j) for i in range(len(texts) - 1) for j in range(K)]

    def rate(pairs: list[tuple[int, int, int, int]]) -> dict:
        same = sum(first_word(texts[a][b]) == first_word(texts[c][d]) for a, b, c, d in pairs)
        return {"agree": same, "pairs": len(pairs), "rate": same / len(pairs)}

    return {"formerly_shared": rate(shared), "never_shared": rate(apart)}


if __name__ == "__main__":
    out = sys.argv[1]
    cfg = RunConfig.model_validate({**read_manifest(out)["config"], "output": {}})
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

    prompts = [[{"role": "user", "content": p.prompt}] for p in load_probes(bundled_probes())]
    stage = ResponseConfig(samples=K, temperature=0.8, max_tokens=8)
    new = responses.sample(engine, prompts, stage, BASE)
    vllm = sys.modules["vllm"]
    old_params = [
        vllm.SamplingParams(n=K, temperature=0.8, top_p=1.0, max_tokens=8, seed=BASE + i)
        for i in range(len(prompts))
    ]
    old = engine.llm.chat(prompts, sampling_params=old_params, use_tqdm=False)
    engine.close()
    print(
        json.dumps(
            {
                "regenerated": regenerated,
                "old": agreement([[c.text for c in o.outputs] for o in old]),
                "new": agreement([[c.text for c in comps] for comps in new]),
            }
        )
    )
