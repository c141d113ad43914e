"""Assertions shared by the end-to-end tests of every engine."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import datasets
import jinja2
import yaml

from sao.records import RECORD_SCHEMA
from sao.store import read_manifest
from tests.conftest import ROOT, TINY, run_sao
from tests.judge_checks import check_judge, check_pairs


def load_records(out: Path) -> datasets.Dataset:
    """What a user does: load the shards with datasets' arrow builder."""
    ds = datasets.load_dataset("arrow", data_files=str(out / "*.arrow"), split="train")
    assert ds.features.arrow_schema.names == RECORD_SCHEMA.names
    for field in RECORD_SCHEMA:
        assert ds.features.arrow_schema.field(field.name).type == field.type, field.name
    return ds


def check_records(records: list[dict], k: int, config: dict) -> None:
    """K responses, judge matrix and diagnostics re-derived, pairs by the configured strategy."""
    assert records, "no records"
    for rec in records:
        assert len(rec["responses"]) == k
        assert all(r["text"] for r in rec["responses"])
        check_judge(rec, config["judge"])
        check_pairs(rec, config["pairs"])


def check_labels_and_json(engine, copies: int = 1) -> None:
    """A real engine reads both verdict labels' log-probabilities (`copies` identical
    conversations) and answers in JSON when given a schema."""
    from sao.engines.base import Sampling

    logprobs = engine.label_logprobs(
        [[{"role": "user", "content": "Answer with A or B. Which is a vowel: A) e B) t"}]] * copies,
        ["A", "B"],
    )
    assert len(logprobs) == copies
    assert all(set(lp) == {"A", "B"} and all(v <= 0 for v in lp.values()) for lp in logprobs)
    schema = json.dumps({"type": "object", "properties": {"score": {"type": "integer"}}})
    structured = engine.chat(
        [[{"role": "user", "content": "Rate blue from 1 to 5 as JSON."}]],
        Sampling(max_tokens=16, temperature=0.0, json_schema=schema),
    )
    assert isinstance(json.loads(structured[0][0].text), dict)


def check_run_diagnostics(manifest: dict, records: list[dict]) -> None:
    """The manifest's judge totals are the sums of the records' judge_stats."""
    totals = manifest["totals"]["judge"]
    assert totals["records"] == len(records)
    for key in ("calls", "generated_tokens", "position_flips", "decisive_pairs", "ties"):
        assert totals[key] == sum(r["judge_stats"][key] for r in records), key
    for key in ("parse_failures", "label_mass_failures", "estimated_cells", "intransitive_triples"):
        assert totals[key] == sum(r["judge_stats"][key] for r in records), key
    decisive = totals["decisive_pairs"]
    if decisive:
        assert math.isclose(totals["position_bias_rate"], totals["position_flips"] / decisive)
    sxx = syy = sxy = 0.0  # score-length correlation within records, pooled over the run
    for rec in records:
        lengths = [r["num_tokens"] for r in rec["responses"]]
        mx, my = sum(lengths) / len(lengths), sum(rec["scores"]) / len(lengths)
        for x, y in zip(lengths, rec["scores"], strict=True):
            sxx, syy, sxy = sxx + (x - mx) ** 2, syy + (y - my) ** 2, sxy + (x - mx) * (y - my)
    if sxx * syy > 1e-8:
        assert math.isclose(totals["length_corr"], sxy / math.sqrt(sxx * syy), abs_tol=1e-3)


def generate_with(engine: str, out: Path, tmp: Path, /, **sections: dict) -> dict:
    """`sao generate` with the tiny config plus `sections` merged in; returns the config used."""
    config = {**TINY, **sections}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    generate_tiny(engine, out, path)
    return read_manifest(out)["config"]


def check_reversal(result: dict, k: int, tol: float) -> None:
    """Reversing the responses reverses P; judging again reproduces the stored P."""
    stored, forward, backward = result["stored"], result["forward"], result["reversed"]
    for a, b in itertools.product(range(k), repeat=2):
        assert math.isclose(backward[a][b], forward[k - 1 - a][k - 1 - b], abs_tol=tol)
        assert math.isclose(forward[a][b], stored[a][b], abs_tol=tol)


def script_json(script: str, *args: str) -> dict:
    """Run a test script (vLLM needs a `__main__` guard) and parse the JSON line it prints last."""
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rejudge(engine: str, out: Path) -> dict:
    """Judge a run's first record again, forward and reversed (tests/judge_reversal.py)."""
    return script_json("tests/judge_reversal.py", engine, str(out))


def generate_tiny(engine: str, out: Path, config: Path) -> subprocess.CompletedProcess:
    """`sao generate` with the tiny config on one engine; fails the test if the command fails."""
    proc = run_sao("generate", "-c", str(config), "--engine", engine, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def label_logprobs(folder: str, conversation: list[dict], **template_kwargs) -> dict[str, float]:
    """log p(A), log p(B) as the next assistant token, from one plain forward pass
    (`template_kwargs` go to the chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = tok.apply_chat_template(
        conversation, add_generation_prompt=True, return_tensors="pt", **template_kwargs
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        last = model(ids).logits[0, -1].log_softmax(-1)
    return {label: float(last[tok.encode(label, add_special_tokens=False)[0]]) for label in "AB"}


def check_judged_by(
    record: dict, judge: str, generator: str, tol: float, system: str | None = None, **kwargs
) -> None:
    """The record's first pairwise verdict holds `judge`'s label log-probabilities (recomputed
    in plain transformers: the judge template rendered by jinja2 after `system`, the chat
    template given `kwargs`), which differ from what `generator` would have said."""
    call = record["judgments"][0]
    texts = [r["text"] for r in record["responses"]]
    template = jinja2.Template((ROOT / "templates" / "judge_pairwise.j2").read_text())
    content = template.render(
        prompt=record["prompt"][-1]["content"],
        first=texts[call["i"]],
        second=texts[call["j"]],
        first_label="A",
        second_label="B",
    )
    conversation = [{"role": "system", "content": system}] if system else []
    conversation.append({"role": "user", "content": content})
    stored = json.loads(call["raw"])
    by_judge, by_generator = (
        label_logprobs(judge, conversation, **kwargs),
        label_logprobs(generator, conversation),
    )
    error = max(abs(stored[label] - by_judge[label]) for label in "AB")
    assert error <= tol, (stored, by_judge)
    assert max(abs(by_judge[x] - by_generator[x]) for x in "AB") > 3 * tol  # the check can fail
    p = math.exp(by_judge["A"]) / (math.exp(by_judge["A"]) + math.exp(by_judge["B"]))
    assert math.isclose(call["p_first"], p, abs_tol=tol)


def check_template_kwargs(engine, template: str, tol: float, **kwargs) -> None:
    """`engine` reads a judge-like conversation with a system message through `template` given
    `kwargs` (the engine passes them on to the chat template): its label log-probs match plain
    transformers rendering the same, and differ from the template read without `kwargs` (the
    reasoning block opened), so the check can fail."""
    from sao.models import resolve_model

    question = "Which answer is kinder?\n[Answer A]\nThank you!\n[Answer B]\nGo away."
    conversation = [
        {"role": "system", "content": "You are a fair judge."},
        {"role": "user", "content": question + "\nReply with a single letter: A or B."},
    ]
    model = resolve_model("smollm2-135m-instruct").path
    (steered,) = engine.label_logprobs([conversation], ["A", "B"], kwargs)
    (plain,) = engine.label_logprobs([conversation], ["A", "B"], kwargs_without(kwargs))
    expected = label_logprobs(model, conversation, **{"chat_template": template, **kwargs})
    for label in "AB":
        assert math.isclose(steered[label], expected[label], abs_tol=tol), (steered, expected)
    assert max(abs(steered[x] - plain[x]) for x in "AB") > 3 * tol


def kwargs_without(kwargs: dict) -> dict | None:
    """`kwargs` less `enable_thinking` (None when nothing is left)."""
    rest = {k: v for k, v in kwargs.items() if k != "enable_thinking"}
    return rest or None
