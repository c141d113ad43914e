"""The transformers engine on the embedded model: shared-prefix judge passes are exact."""

from __future__ import annotations

import pytest
import torch

from sao.engines.hf import HFEngine
from sao.engines.prefix import group_by_prefix, prefix_waves
from sao.models import resolve_model


def test_group_by_prefix_groups_shared_heads():
    seqs = [[1, 2, 3, 4, 9], [1, 2, 3, 4, 8], [1, 2, 7], [5, 6], [1, 2, 3, 4, 9, 9]]
    groups = group_by_prefix(seqs, min_shared=3)
    assert sorted(sorted(g) for _, g in groups) == [[0, 1, 4], [2], [3]]
    for n, members in groups:
        assert all(n < len(seqs[i]) for i in members)
        assert all(seqs[i][:n] == seqs[members[0]][:n] for i in members)


def test_prefix_waves_send_each_shared_prefix_once_before_its_users():
    rec = lambda r, a, b: f"instructions for record {r:02d} ........ first={a} second={b}"  # noqa: E731
    texts = [rec(r, a, b) for r in range(2) for a in "xyz" for b in "xyz" if a != b]
    waves = prefix_waves(texts, min_shared=40)
    assert sorted(i for wave in waves for i in wave) == list(range(len(texts)))
    assert len(waves[0]) == 2  # one per record
    assert len(waves[0]) + len(waves[1]) == 6  # one per (record, first answer)


@pytest.mark.slow
def test_label_logprobs_match_one_conversation_at_a_time():
    # the shared-prefix KV copy computes in another batch shape than one call at a time: equal
    # to 1e-3 in fp32. Pinned to fp32 whatever SAO_TEST_DTYPE says: the copy's logic is the
    # same in every dtype, and bf16 cannot show it (its logits near 20 are spaced 0.125 apart,
    # and a label log-prob moved by up to 0.18 between the two batch shapes on this model)
    engine = HFEngine(resolve_model("smollm2-135m-instruct").path, batch_size=4, dtype="float32")
    answers = ["Paris is the capital of France.", "Lyon.", "It is Paris, on the Seine.", "Nice"]
    convs = [
        [{"role": "user", "content": f"Which is better?\nA: {a}\nB: {b}\nAnswer A or B."}]
        for a in answers
        for b in answers
        if a != b
    ]
    shared = engine.label_logprobs(convs, ["A", "B"])
    ids = engine.label_ids(["A", "B"])
    for conv, got in zip(convs, shared, strict=True):
        enc = engine.tokenizer(engine.render(conv), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            logits = engine.model(**enc).logits[0, -1].float()
        want = torch.log_softmax(logits, -1)[ids].tolist()
        assert got["A"] == pytest.approx(want[0], abs=1e-3)
        assert got["B"] == pytest.approx(want[1], abs=1e-3)


@pytest.mark.slow
def test_hf_args_reach_from_pretrained():
    path = resolve_model("smollm2-135m-instruct").path
    engine = HFEngine(path, dtype="float32", hf_args={"attn_implementation": "eager"})
    assert engine.model.config._attn_implementation == "eager"  # the default here is sdpa
    default = HFEngine(path, dtype="float32")
    assert default.model.config._attn_implementation != "eager"
    conversation = [[{"role": "user", "content": "Say A or B."}]]
    eager, sdpa = (e.label_logprobs(conversation, ["A", "B"])[0] for e in (engine, default))
    assert eager == pytest.approx(sdpa, abs=1e-3)  # the same model, another attention kernel
