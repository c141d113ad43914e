"""`judge.mode: reward-model` on the hf engine: a sequence-classification reward model built
here from the embedded model's weights (a seeded, untrained head) scores every answer.

Its rewards are recomputed one conversation at a time with plain transformers (no padding), so
the batching, the padding and the record's P are each checked against an independent value.
"""

from __future__ import annotations

import functools
import json
import math

import pytest
import yaml

from sao.engines.reward import RewardEngine
from sao.models import resolve_model
from sao.store import read_manifest, read_records
from sao.verify import verify
from tests.conftest import TINY, run_sao
from tests.judge_checks import check_judge

pytestmark = pytest.mark.slow
ANSWERS = ["Paris.", "The capital of France is Paris, on the Seine.", "Lyon", "I do not know."]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    """The embedded model's body with a seeded one-output head, saved as a reward model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model("smollm2-135m-instruct").path
    out = tmp_path_factory.mktemp("reward") / "model"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=1, dtype=torch.float32
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


@functools.cache
def plain_model(folder):
    """The reward model and its tokenizer, loaded with transformers alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    return AutoTokenizer.from_pretrained(folder), model.eval()


def plain_reward(folder, conversation: list[dict]) -> float:
    """One conversation, no padding, the model's own forward: its single logit."""
    import torch

    tok, model = plain_model(str(folder))
    ids = tok.apply_chat_template(conversation, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        return float(model(input_ids=ids["input_ids"]).logits[0, 0])


def conversations() -> list[list[dict]]:
    question = {"role": "user", "content": "What is the capital of France?"}
    return [[question, {"role": "assistant", "content": a}] for a in ANSWERS]


def test_batched_rewards_equal_one_at_a_time_and_plain_transformers(reward_model):
    batched = RewardEngine(str(reward_model), dtype="float32", batch_size=3)
    single = RewardEngine(str(reward_model), dtype="float32", batch_size=1)
    convs = conversations()
    together, alone = batched.rewards(convs), single.rewards(convs)
    plain = [plain_reward(reward_model, c) for c in convs]
    assert together == pytest.approx(alone, abs=1e-4)
    assert together == pytest.approx(plain, abs=1e-4)
    assert max(plain) - min(plain) > 1e-2  # the answers get different rewards: the check can fail


def test_a_run_judged_by_a_reward_model_records_raw_rewards(reward_model, tmp_path):
    small = {
        **TINY,
        "personas": {"count": 2},
        "responses": {"samples": 3, "max_tokens": 24},
        "judge": {"model": str(reward_model), "mode": "reward-model", "reward_scale": 0.5},
        # a raw reward's exactness is checked against plain fp32 (tests/dtypes.py): pinned
        "engine": {**TINY["engine"], "dtype": "float32"},
    }
    config, out = tmp_path / "c.yaml", tmp_path / "out"
    config.write_text(yaml.safe_dump(small))
    proc = run_sao("generate", "-c", str(config), "--engine", "hf", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(out)
    assert (manifest["engine"]["name"], manifest["engine"]["judge"]) == ("hf", "hf-reward")
    assert manifest["judge_model"]["source"] == "local"
    assert verify(out)[0] == []
    records = read_records(out).to_pylist()
    assert records
    for rec in records:
        check_judge(rec, manifest["config"]["judge"])  # P = σ(Δreward / 0.5), recounted
        assert rec["judge_model"] == str(reward_model)
        for judgment in rec["judgments"]:
            answer = rec["responses"][judgment["i"]]["text"]
            conversation = [*rec["prompt"], {"role": "assistant", "content": answer}]
            raw = json.loads(judgment["raw"])["reward"]
            assert raw == pytest.approx(plain_reward(reward_model, conversation), abs=1e-3)
        scores = [json.loads(j["raw"])["reward"] for j in rec["judgments"]]
        p01 = 1 / (1 + math.exp(-(scores[0] - scores[1]) / 0.5))
        assert rec["pref_matrix"][0][1] == pytest.approx(p01, abs=1e-5)


def test_reward_mode_without_a_reward_model_is_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"judge": {"mode": "reward-model"}}))
    proc = run_sao("generate", "-c", str(config), "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "judge.mode reward-model needs judge.model" in proc.stderr
