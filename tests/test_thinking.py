"""Thinking models and system messages, end to end on the hf engine.

Two models stand in for thinking ones (tests/conftest.py): `thinking_model` opens every reply
with <think>…</think> itself, as Qwen3 does; `switch_judge` is the second model behind a chat
template that opens the reasoning block for it, as DeepSeek-R1's does, unless the template
variable `enable_thinking` is false.
"""

from __future__ import annotations

import pytest
import yaml

from sao.store import read_manifest, read_records
from sao.verify import verify
from tests.conftest import TINY, run_sao
from tests.dtypes import batch_tolerance
from tests.e2e_checks import check_judged_by

pytestmark = pytest.mark.slow
ANSWER_SYSTEM = "Answer in one short sentence."
JUDGE_SYSTEM = "You are a strict, fair judge."
OPENING, CLOSING = "<think>", "</think>"


def thinking_config(generator, **judge) -> dict:
    """The tiny config on the thinking model: two personas in one shard, K=2, reasoning kept."""
    return {
        **TINY,
        "model": str(generator),
        "personas": {"count": 2},
        "prompts": {"candidates": 2, "max_tokens": 64},
        "responses": {"samples": 2, "max_tokens": 48, "system": ANSWER_SYSTEM},
        "reasoning": {"keep": True},
        "judge": judge,
    }


def generate(tmp_path, config: dict):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    return run_sao("generate", "-c", str(path), "--engine", "hf", "--out", str(out)), out


@pytest.mark.parametrize("judge", ["itself", "template"])
def test_a_logprob_judge_that_would_read_reasoning_is_refused_at_start(
    judge, thinking_model, switch_judge, tmp_path
):
    """`itself`: the model's first greedy tokens open reasoning; `template`: the judge's chat
    template opens it. Either way the run stops before any shard, in one line."""
    settings = {} if judge == "itself" else {"model": str(switch_judge)}
    proc, out = generate(tmp_path, thinking_config(thinking_model, **settings))
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "opens its reply with reasoning" in line and "enable_thinking" in line
    assert "Traceback" not in proc.stderr
    assert not list(out.glob("shard-*.arrow"))


@pytest.fixture(scope="module")
def thought(thinking_model, switch_judge, tmp_path_factory):
    """A run where prompts and answers think, judged by `switch_judge` kept out of thinking by
    its template variable, with a system message of its own."""
    tmp = tmp_path_factory.mktemp("thinking-run")
    judge = {
        "model": str(switch_judge),
        "system": JUDGE_SYSTEM,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    proc, out = generate(tmp, thinking_config(thinking_model, **judge))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_reasoning_stays_out_of_prompts_answers_and_verdicts(thought):
    records = read_records(thought).to_pylist()
    assert records and verify(thought)[0] == []
    kept = 0
    for rec in records:
        assert [m["role"] for m in rec["prompt"]] == ["system", "user"]
        assert rec["prompt"][0]["content"] == ANSWER_SYSTEM
        assert not rec["prompt"][-1]["content"].startswith(OPENING)
        for answer in rec["responses"]:
            # the reply was cut at its first closing marker: reasoning before, answer after
            assert not answer["text"].startswith(OPENING)
            if answer["reasoning"] is not None:
                kept += 1
                assert CLOSING not in answer["reasoning"]
    assert kept > 0  # the model did think, and its reasoning was kept apart
    config = read_manifest(thought)["config"]
    assert config["reasoning"] == {"markers": [OPENING, CLOSING], "keep": True}


def test_the_judge_read_its_verdict_with_its_template_variables_and_system_message(
    thought, switch_judge
):
    """The stored label log-probabilities are recomputed in plain transformers from a judge
    conversation built in the test (judge.system first), rendered with enable_thinking false;
    rendered without it (the reasoning block opened) they differ, so the check can fail."""
    record = read_records(thought).to_pylist()[0]
    judge = str(switch_judge)
    check_judged_by(record, judge, judge, batch_tolerance(), JUDGE_SYSTEM, enable_thinking=False)


def test_chat_renders_the_system_message_and_template_variables(switch_judge):
    """The hf engine's `chat` (prompts, answers, text verdicts) writes, greedily, what plain
    transformers writes from the conversation rendered with the same system message and
    variable; without the variable the template opens a reasoning block and the text differs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sao.engines.base import Sampling
    from sao.engines.hf import HFEngine

    conversation = [
        {"role": "system", "content": ANSWER_SYSTEM},
        {"role": "user", "content": "Name a colour."},
    ]
    engine = HFEngine(str(switch_judge), dtype="float32")
    greedy = Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=12)
    ((steered,),) = engine.chat([conversation], greedy, {"enable_thinking": False})
    ((opened,),) = engine.chat([conversation], greedy)
    engine.close()
    tokenizer = AutoTokenizer.from_pretrained(switch_judge)
    model = AutoModelForCausalLM.from_pretrained(switch_judge, dtype=torch.float32)
    ids = tokenizer.apply_chat_template(
        conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True,
        enable_thinking=False,
    )  # fmt: skip
    out = model.generate(**ids, do_sample=False, max_new_tokens=12)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert steered.text == text.strip()
    assert opened.text != steered.text
