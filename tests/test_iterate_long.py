"""`sao iterate` on the embedded model: two real rounds (hf generation, TRL DPO with LoRA,
evaluation), killed by SIGKILL in generation, in training and in evaluation, and finished by
the same command; then its figures checked against independent recounts, the resumed
training against an uninterrupted one, and the last checkpoint generating on vLLM (make
test-long; `sao train`'s own resume is this test's round 1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from sao.config import RunConfig
from sao.judge_eval import bundled_probes
from sao.models import resolve_model
from sao.rounds.config import load_iterate_config
from sao.rounds.ledger import chain_breaks
from sao.stages.judge_diagnostics import preference
from sao.store import read_records
from sao.training import train
from tests.conftest import requires, run_sao
from tests.dtypes import TEST_DTYPE, batch_tolerance, effective_dtype

pytestmark = pytest.mark.long

LOOP = {
    "seed": 11,
    "engine": {"name": "hf", "dtype": TEST_DTYPE},
    "prompts": {"candidates": 2, "max_tokens": 48},
    "responses": {"samples": 2, "max_tokens": 24},
    "output": {"shard_size": 2},
    "train": {
        "algo": "dpo",
        "max_steps": 2,
        "batch_size": 2,
        "learning_rate": 1e-4,
        "save_steps": 1,
        "dtype": "float32",
        "split_ratio": 0.0,
        "lora": {"r": 4, "alpha": 8},  # small TRL checkpoints; merged into each round's model
    },
    "iterate": {
        "rounds": 2,
        "personas": 4,
        "anchors": 3,
        "reference": "previous",  # SPPO's choice (the benchmark runs "initial")
        "judge": "initial",
        "eval": {"samples": 2, "max_tokens": 24},
    },
}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ledger(loop: Path) -> dict:
    return json.loads((loop / "iterate.json").read_text())


def stages(loop: Path) -> dict[tuple[int, str], dict]:
    return {(e["round"], e["stage"]): e for e in ledger(loop)["stages"]}


def iterate(config: Path, loop: Path, failpoint: str | None = None):
    env = {"SAO_FAILPOINT": failpoint} if failpoint else None
    return run_sao("iterate", "-c", str(config), "-o", str(loop), env=env, timeout=1500)


def answer_logprob(model, tok, prompt: list[dict], text: str, ended: bool) -> float:
    """log π(text | prompt), one sequence at a time, in plain transformers."""
    ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False)
    end = tok.convert_tokens_to_ids("<|im_end|>")  # SmolLM2's template closes a turn with it
    answer = tok(text, add_special_tokens=False)["input_ids"] + ([end] if ended else [])
    full = torch.tensor([list(ids) + answer])
    with torch.no_grad():
        logp = torch.log_softmax(model(full).logits[0].float(), -1)
    return sum(float(logp[len(ids) - 1 + t, a]) for t, a in enumerate(answer))


@requires("vllm")
def test_a_loop_killed_in_every_stage_finishes_with_its_digests_chained(tmp_path, tiny_config):
    probes = tmp_path / "probes.jsonl"
    probes.write_text("".join(bundled_probes().read_text().splitlines(True)[:6]))
    data = json.loads(json.dumps(LOOP))
    data["iterate"]["eval"]["probes"] = str(probes)
    config = tmp_path / "it.yaml"
    config.write_text(yaml.safe_dump(data))
    loop = tmp_path / "loop"

    # 1. killed in round 1's generation, its shard 1 judged but not written
    proc = iterate(config, loop, "kill@judge:1")
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert set(stages(loop)) == {(0, "anchors"), (0, "evaluate")}
    shard0 = loop / "round-1" / "data" / "shard-00000.arrow"
    kept_shard = sha(shard0)
    before = stages(loop)

    # 2. killed in round 1's training, after its first TRL checkpoint
    proc = iterate(config, loop, "kill@saved:1")
    assert proc.returncode == -9, proc.stderr[-3000:]
    now = stages(loop)
    assert set(now) == {*before, (1, "generate")}
    assert all(now[key] == before[key] for key in before)  # finished stages untouched
    assert sha(shard0) == kept_shard  # the committed shard was not made again
    before = now

    # 3. killed in round 1's evaluation, its answers written, not judged
    proc = iterate(config, loop, "kill@sampled:1")
    assert proc.returncode == -9, proc.stderr[-3000:]
    now = stages(loop)
    assert set(now) == {*before, (1, "train")}
    assert all(now[key] == before[key] for key in before)
    lineage = json.loads((loop / "round-1" / "model" / "sao_lineage.json").read_text())
    assert lineage["resumed_from"] == "checkpoint-1"
    steps = [e["step"] for e in lineage["log_history"] if "loss" in e]
    assert steps == [1, 2]  # the history carries on from the checkpoint's
    answers = answers_path(loop, 1)
    kept_answers = sha(answers)
    before = now

    # 4. the same command finishes the loop
    proc = iterate(config, loop)
    assert proc.returncode == 0, proc.stderr[-3000:]
    now = stages(loop)
    assert all(now[key] == before[key] for key in before)
    assert sha(answers) == kept_answers  # round 1's answers were read back, not sampled again
    for r in (1, 2):
        assert {(r, s) for s in ("generate", "train", "evaluate")} <= set(now)
    book = ledger(loop)
    assert book["status"] == "complete" and chain_breaks(book) == []
    # the chain recomputed from the files: round 2 generated with round 1's checkpoint
    manifest2 = json.loads((loop / "round-2" / "data" / "manifest.json").read_text())
    assert manifest2["model"]["digest"] == now[(1, "train")]["digest"]
    assert manifest2["model"]["digest"] == now[(2, "generate")]["generator_digest"]
    assert now[(2, "train")]["data_digest"] == sha(loop / "round-2" / "data" / "manifest.json")
    # disjoint persona slices: anchors, round 1, round 2
    anchor_lines = (loop / "anchors.jsonl").read_text().splitlines()
    anchors = {json.loads(line)["persona_id"] for line in anchor_lines}
    people = [{rec["persona_id"] for rec in _records(loop / f"round-{r}" / "data")} for r in (1, 2)]
    assert not anchors & people[0] and not anchors & people[1] and not people[0] & people[1]
    assert "best round by the frozen judge" in proc.stdout

    # the figures, recounted
    band = RunConfig().judge.tie_band  # the loop's config leaves the judge's default
    evals = {r: json.loads((loop / f"round-{r}" / "eval.json").read_text()) for r in (0, 1, 2)}
    for r in (1, 2):
        for key in ("vs_initial", "vs_previous"):
            duel = evals[r][key]
            ps = duel["p"]
            assert duel["duels"] == len(ps) > 0
            assert duel["win_rate"] == sum(preference(p, band) == 1 for p in ps) / len(ps)
            assert duel["loss_rate"] == sum(p < 0.5 - band for p in ps) / len(ps)
    # round 1 was judged by π_0 itself: no second judge to agree with
    assert evals[1]["judge_agreement"] == {
        "by": "self-judge",
        "same_model": True,
        "agreement": None,
    }
    # round 2, judged by π_0: π_1 judged its pairs again; recounted from the records
    agreement = evals[2]["judge_agreement"]
    assert agreement["by"] == "self-judge" and not agreement["same_model"]
    records = _records(loop / "round-2" / "data")
    pairs = [(rec, pair) for rec in records for pair in rec["pairs"]]
    assert agreement["pairs"] == len(pairs) == len(agreement["other_p"])
    run_p = [rec["pref_matrix"][p["chosen"]][p["rejected"]] for rec, p in pairs]
    assert agreement["run_p"] == run_p
    both = [
        (a, b)
        for a, b in zip(run_p, agreement["other_p"], strict=True)
        if abs(a - 0.5) > band and abs(b - 0.5) > band
    ]
    assert agreement["decided"] == len(both)
    same = sum((a > 0.5) == (b > 0.5) for a, b in both)
    assert agreement["agreement"] == (same / len(both) if both else None)
    data_2 = evals[2]["data"]
    margins = [p["margin"] for _, p in pairs]
    assert data_2["pairs"] == len(pairs)
    assert data_2["mean_margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-6)
    cells = [
        rec["pref_matrix"][i][j]
        for rec in records
        for i in range(len(rec["responses"]))
        for j in range(i + 1, len(rec["responses"]))
        if not rec["pref_estimated"][i][j]
    ]
    # P is stored as float32, counted by the run in float64: a cell on the band's edge may flip
    recounted = sum(abs(p - 0.5) <= band for p in cells) / len(cells)
    assert abs(data_2["tie_rate"] - recounted) <= 1 / len(cells)
    # round 2 trained against π_1 (reference: previous), π_1 against π_0
    lineage2 = json.loads((loop / "round-2" / "model" / "sao_lineage.json").read_text())
    assert lineage2["reference"]["digest"] == now[(1, "train")]["digest"]
    assert lineage["reference"]["digest"] == now[(0, "anchors")]["generator_digest"]
    # the chosen and rejected answers' cosine, embedded again with sentence-transformers
    from sentence_transformers import SentenceTransformer

    from sao.text.embed import model_path

    minilm = SentenceTransformer(str(model_path()), device="cpu")
    texts = [[r["text"] for r in rec["responses"]] for rec, _ in pairs]
    chosen = minilm.encode([t[p["chosen"]] for t, (_, p) in zip(texts, pairs, strict=True)])
    rejected = minilm.encode([t[p["rejected"]] for t, (_, p) in zip(texts, pairs, strict=True)])
    cosines = [
        float(a @ b / ((a @ a) ** 0.5 * (b @ b) ** 0.5))
        for a, b in zip(chosen, rejected, strict=True)
    ]
    assert data_2["chosen_rejected_cosine"] == pytest.approx(sum(cosines) / len(cosines), abs=1e-4)

    # every round's answers, read back: lengths, truncation, and the duels' pairing
    written = {r: json.loads(answers_path(loop, r).read_text())["answers"] for r in (0, 1, 2)}
    for r in (0, 1, 2):
        tokens = [n for a in written[r] for n in a["tokens"]]
        cut = [c for a in written[r] for c in a["truncated"]]
        assert evals[r]["degeneration"]["mean_tokens"] == pytest.approx(sum(tokens) / len(tokens))
        assert evals[r]["degeneration"]["truncation_rate"] == pytest.approx(sum(cut) / len(cut))
    for r, key, other in ((1, "vs_initial", 0), (2, "vs_initial", 0), (2, "vs_previous", 1)):
        assert evals[r][key]["unjudged"] == 0
        assert evals[r][key]["tokens"] == [
            [mine, theirs]
            for a, b in zip(written[r], written[other], strict=True)
            for mine, theirs in zip(a["tokens"], b["tokens"], strict=True)
        ], (r, key)  # π_r's s-th answer against the other policy's s-th, anchor by anchor

    # KL(π_1 ‖ π_0), KL(π_2 ‖ π_0), KL(π_2 ‖ π_1) from the rounds' samples, and π_1's probe
    # likelihoods: recomputed one answer at a time in plain transformers
    dtype = getattr(torch, effective_dtype())
    prompts = [json.loads(line)["prompt"] for line in anchor_lines]
    samples = {
        r: [
            (prompt, text, not cut)
            for prompt, a in zip(prompts, written[r], strict=True)
            for text, cut in zip(a["texts"], a["truncated"], strict=True)
        ]
        for r in (1, 2)
    }
    pi0 = resolve_model("smollm2-135m-instruct").path
    paths = {0: pi0, 1: loop / "round-1" / "model", 2: loop / "round-2" / "model"}
    logp = {}
    for m, path in paths.items():
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        for r in (1, 2):
            if m <= r:
                logp[m, r] = [answer_logprob(model, tok, *one) for one in samples[r]]
        if m == 1:
            gaps = []
            for line in probes.read_text().splitlines():
                probe = json.loads(line)
                asked = [{"role": "user", "content": probe["prompt"]}]
                means = [
                    answer_logprob(model, tok, asked, text, False)
                    / len(tok(text, add_special_tokens=False)["input_ids"])
                    for text in (probe["better"], probe["worse"])
                ]
                gaps.append(means[0] - means[1])
    tol = batch_tolerance() * 24  # per-token differences of two batchings, over an answer
    for r, key, other in ((1, "kl_initial", 0), (2, "kl_initial", 0), (2, "kl_previous", 1)):
        diffs = [a - b for a, b in zip(logp[r, r], logp[other, r], strict=True)]
        assert evals[r][key]["kl"] == pytest.approx(sum(diffs) / len(diffs), abs=tol), (r, key)
        assert evals[r][key]["samples"] == len(diffs) == 2 * len(prompts)
    likelihood = evals[1]["probe_likelihood"]
    assert likelihood["probes"] == len(gaps) == 6
    assert likelihood["mean_gap"] == pytest.approx(sum(gaps) / len(gaps), abs=batch_tolerance())
    if all(abs(g) > batch_tolerance() for g in gaps):  # no probe within roundoff of a tie
        assert likelihood["better_more_likely"] == sum(g > 0 for g in gaps) / len(gaps)

    # 5. once more: nothing to do, nothing changed; other settings refused in one line
    kept = (loop / "iterate.json").read_bytes()
    proc = iterate(config, loop)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (loop / "iterate.json").read_bytes() == kept
    data["iterate"]["personas"] = 5
    config.write_text(yaml.safe_dump(data))
    proc = iterate(config, loop)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "iterate.personas" in proc.stderr
    assert (loop / "iterate.json").read_bytes() == kept

    # 6. the per-round curves
    proc = run_sao("report", str(loop))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((loop / "report.json").read_text())
    assert [row["round"] for row in report["rounds"]] == [0, 1, 2]
    assert report["rounds"][1]["kl_0"] == evals[1]["kl_initial"]["kl"]
    assert "data:image/png;base64," in (loop / "report.html").read_text()

    # other stop rules may change: a rule that fires at round 1 stops the finished loop there
    data["iterate"].update(personas=4, stop={"length_growth": 1e-6})
    config.write_text(yaml.safe_dump(data))
    proc = iterate(config, loop)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopped after round 1: length_growth" in proc.stdout
    book = ledger(loop)
    assert book["status"] == "stopped" and book["stopped"]["round"] == 1
    assert book["stopped"]["rule"].startswith("length_growth")
    assert book["stages"] == json.loads(kept)["stages"]  # nothing was done again
    assert run_sao("report", str(loop)).returncode == 0  # the curves end where the loop did
    assert [row["round"] for row in json.loads((loop / "report.json").read_text())["rounds"]] == [
        0,
        1,
    ]

    # 7. round 1's training, killed and resumed, made the weights an uninterrupted one makes
    cfg = load_iterate_config(config).train.model_copy(update={"model": pi0, "ref": pi0})
    whole = train(loop / "round-1" / "data", tmp_path / "whole", cfg)
    a = load_file(whole.out / "model.safetensors")
    b = load_file(loop / "round-1" / "model" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)

    # `sao train` on a round's data, as the loop trained it: nothing to do; other settings are
    # refused in one line, the folder untouched
    model = loop / "round-1" / "model"
    before = (model / "model.safetensors").read_bytes()
    train_args = ["train", str(loop / "round-1" / "data"), "--out", str(model), "-c", str(config)]
    train_args += ["--model", pi0, "--ref", pi0]
    proc = run_sao(*train_args)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout, proc.stderr[-3000:]
    proc = run_sao(*train_args, "--algo", "ipo")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--overwrite" in proc.stderr
    assert (model / "model.safetensors").read_bytes() == before

    # 8. the last round's checkpoint is a model `sao generate` samples from on vLLM
    run = tmp_path / "run"
    proc = run_sao(
        "generate", "-c", str(tiny_config), "--engine", "vllm", "--model",
        str(loop / "round-2" / "model"), "--personas", "2", "--out", str(run),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_records(run).num_rows >= 1


def answers_path(loop: Path, r: int) -> Path:
    return loop / f"round-{r}" / "answers.json"


def _records(run: Path) -> list[dict]:
    return read_records(run).to_pylist()


def test_a_round_with_nothing_to_train_on_stops_the_loop(tmp_path):
    """A round whose pairs all fall below train.min_margin (a margin is at most 1) stops the
    loop with rule no_pairs, exit 0, nothing trained; the same command then does nothing."""
    probes = tmp_path / "probes.jsonl"
    probes.write_text("".join(bundled_probes().read_text().splitlines(True)[:2]))
    data = json.loads(json.dumps(LOOP))
    data["train"]["min_margin"] = 2.0
    # K=4 and every decided cell a pair, so the round has pairs for train.min_margin to refuse
    data["responses"]["samples"] = 4
    data["pairs"] = {"strategy": "all-above-margin", "min_margin": 0.0}
    data["iterate"].update({"rounds": 2, "personas": 3, "anchors": 1})
    data["iterate"]["eval"].update({"samples": 1, "max_tokens": 8, "probes": str(probes)})
    config = tmp_path / "it.yaml"
    config.write_text(yaml.safe_dump(data))
    loop = tmp_path / "loop"

    proc = iterate(config, loop)
    assert proc.returncode == 0, proc.stderr[-3000:]
    book = ledger(loop)
    assert book["status"] == "stopped" and book["stopped"]["round"] == 1
    assert book["stopped"]["rule"].startswith("no_pairs:"), book["stopped"]
    assert "no_pairs" in proc.stdout
    assert set(stages(loop)) == {(0, "anchors"), (0, "evaluate"), (1, "generate")}
    # training never started: no model, no TRL checkpoint folder beside it
    assert not (loop / "round-1" / "model").exists()
    assert not (loop / "round-1" / ".model.train").exists()
    # the round has pairs (recounted from its records), and the rule says train.min_margin
    # refused them all: no margin reaches 2
    assert [p for r in _records(loop / "round-1" / "data") for p in r["pairs"]]
    rule = book["stopped"]["rule"]
    assert str(loop / "round-1" / "data") in rule and "train.min_margin" in rule, rule
    kept = (loop / "iterate.json").read_text()
    proc = iterate(config, loop)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ledger(loop)["stages"] == json.loads(kept)["stages"]  # nothing was done again
    assert run_sao("report", str(loop)).returncode == 0
    assert [row["round"] for row in json.loads((loop / "report.json").read_text())["rounds"]] == [0]
