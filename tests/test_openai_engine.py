"""The `openai` engine against a real `vllm serve` of the embedded model on loopback, including
a server killed mid-run and restarted: the run finishes with nothing lost."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from sao.engines.base import Sampling
from sao.engines.openai import OpenAIEngine
from sao.models import resolve_model
from sao.store import read_manifest, read_records
from sao.verify import verify
from tests.conftest import SAO, TINY, requires, run_sao, thinking_template
from tests.dtypes import batch_tolerance
from tests.e2e_checks import (
    check_labels_and_json,
    check_records,
    check_run_diagnostics,
    check_template_kwargs,
)
from tests.servers import VLLMServer, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    requires("vllm"),
]
KEY_ENV, KEY = "SAO_TEST_SERVER_KEY", "sao-test-key"


@pytest.fixture(scope="module")
def served_template(tmp_path_factory) -> Path:
    """The embedded template with a Qwen3-style `enable_thinking` switch, as a file to serve;
    without the variable it renders exactly as the model's own."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    path = tmp_path_factory.mktemp("template") / "thinking.jinja"
    path.write_text(thinking_template(tokenizer.chat_template))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, served_template):
    folder = tmp_path_factory.mktemp("server")
    srv = VLLMServer(folder / "vllm.log", api_key=KEY, chat_template=served_template)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def engine(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    eng = OpenAIEngine(server.url, None, api_key_env=KEY_ENV, concurrency=8)
    yield eng
    eng.close()


def test_the_engine_samples_n_with_seeds_logprobs_and_json(engine, server):
    assert engine.model == server.model and engine.supports_logprobs
    conversations = [[{"role": "user", "content": f"Name a colour ({i})."}] for i in range(3)]
    before = engine.generated_tokens
    results = engine.chat(conversations, Sampling(n=3, temperature=0.8, max_tokens=12, seed=5))
    assert [len(r) for r in results] == [3, 3, 3]
    # the server seeds choice j of request i with seed + 3i + j (sao.seeds): all distinct
    assert [[c.seed for c in r] for r in results] == [[5, 6, 7], [8, 9, 10], [11, 12, 13]]
    assert all(0 < c.num_tokens <= 12 for r in results for c in r)
    assert engine.generated_tokens - before == sum(c.num_tokens for r in results for c in r)
    (alone,) = engine.chat(
        conversations[1:2], Sampling(n=1, temperature=0.8, max_tokens=12, seed=10)
    )
    assert alone[0].text == results[1][2].text  # the stored seed alone reproduces the answer
    again = engine.chat(conversations, Sampling(n=3, temperature=0.8, max_tokens=12, seed=5))
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in results]
    check_labels_and_json(engine, copies=1)


def test_template_variables_reach_the_servers_chat_template(engine, served_template):
    """`chat_template_kwargs` travel in the request body, the system message as a message."""
    # the server holds bf16 weights (CPU_FLAGS), the reference fp32 ones: 0.17 apart measured
    tol = 2 * batch_tolerance("bfloat16")
    check_template_kwargs(engine, served_template.read_text(), tol, enable_thinking=False)


def test_a_wrong_key_or_no_server_is_one_line(server, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({**TINY, "engine": {**TINY["engine"], "api_key_env": KEY_ENV}})
    )
    args = ("generate", "-c", str(config), "--engine", "openai", "--out", str(tmp_path / "o"))
    wrong = run_sao(*args, env={"OPENAI_BASE_URL": server.url, KEY_ENV: "wrong"})
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "401" in wrong.stderr.strip().splitlines()[-1], wrong.stderr
    down = f"http://127.0.0.1:{free_port()}/v1"
    config.write_text(
        yaml.safe_dump({**TINY, "engine": {**TINY["engine"], "base_url": down, "patience_s": 2}})
    )
    gone = run_sao(*args)
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert gone.stderr.strip().splitlines()[-1].startswith(f"error: engine 'openai': {down} ")


def test_a_server_killed_mid_run_and_restarted_loses_nothing(server, tmp_path):
    """Also the text judge with a pairs budget and consistent-only pairs, end to end."""
    config = tmp_path / "c.yaml"
    settings = {
        **TINY,
        "engine": {"base_url": server.url, "api_key_env": KEY_ENV, "patience_s": 600},
        "responses": {"samples": 4, "max_tokens": 24},
        "judge": {"mode": "pairwise-text", "opponents": 1, "max_tokens": 8},
        "pairs": {"strategy": "consistent-only", "min_margin": 0.0},
    }
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [SAO, "generate", "-c", str(config), "--engine", "openai", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, KEY_ENV: KEY},
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.json").exists() and read_manifest(out)["shards"]:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]  # shard 1 still to come
    server.kill()
    time.sleep(2)
    server.start()
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and len(manifest["shards"]) == 2
    assert (manifest["engine"]["name"], manifest["engine"]["base_url"]) == ("openai", server.url)
    # the alias means "the server's only model": the manifest names the one it served
    assert manifest["model"]["served"] == server.model and manifest["model"]["root"] == server.model
    assert verify(out)[0] == []
    records = read_records(out).to_pylist()
    check_records(records, 4, manifest["config"])
    check_run_diagnostics(manifest, records)
    for rec in records:
        assert rec["judge_stats"]["calls"] == 8  # the ring: 4 of 6 pairs, both orders
        assert rec["judge_stats"]["estimated_cells"] >= 2
