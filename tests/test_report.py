"""`sao report` and the prompt filters, end to end on the embedded model (hf engine).

Two real runs: one with personas, one `--no-personas` with every filter switched on. The report
of one beside the other is recomputed independently and rendered in headless Chromium. A third,
small run decodes the same request greedily so that the duplicate filter must fire.
"""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer

from sao.personas import load_library
from sao.records import shard_name
from sao.store import read_manifest, read_records
from tests.browser import inspect_page, require_chromium
from tests.conftest import ROOT, run_sao
from tests.e2e_checks import generate_with

pytestmark = pytest.mark.slow
NO_PERSONAS = {
    "seed": 5,
    "personas": {"count": 6, "enabled": False},
    "prompts": {"candidates": 3, "max_tokens": 48},
    "responses": {"samples": 2, "max_tokens": 24},
    "filters": {"exact": True, "near_duplicate": 0.9, "rouge_l": 0.7},
    "output": {"shard_size": 3},
}
SECTIONS = [
    "summary",
    "prompts",
    "responses",
    "map",
    "distributions",
    "personas",
    "judge",
    "ngrams",
    "clusters",
]
# three empty-persona slots, one greedy candidate each: the same request decoded greedily, so
# the same prompt three times (46 tokens on the embedded model, well under the cap)
GREEDY = {
    "seed": 5,
    "personas": {"count": 3, "enabled": False},
    "prompts": {"candidates": 1, "temperature": 0.0, "max_tokens": 96},
    "responses": {"samples": 2, "max_tokens": 16},
    "output": {"shard_size": 3},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, hf_run):
    """The shared tiny hf run (personas) and a `--no-personas` run with every filter on."""
    base = tmp_path_factory.mktemp("report")
    generate_with("hf", base / "none", base, **NO_PERSONAS)
    return hf_run[0], base / "none"


@pytest.fixture(scope="module")
def greedy_run(tmp_path_factory):
    """A small run whose prompts all repeat the first: the exact filter must fire."""
    base = tmp_path_factory.mktemp("greedy")
    generate_with("hf", base / "out", base, **GREEDY)
    return base / "out"


def prompts_of(out) -> list[str]:
    return [turns[-1]["content"] for turns in read_records(out)["prompt"].to_pylist()]


def test_no_persona_prompts_come_from_the_bare_template(runs):
    _, without = runs
    records = read_records(without).to_pylist()
    manifest = read_manifest(without)
    assert manifest["personas"]["source"] is None
    assert all(r["persona"] == "" and r["persona_id"].startswith("none:") for r in records)
    assert len({r["record_id"] for r in records}) == len(records)


def test_filters_leave_no_repeated_prompt_and_count_every_rejection(runs):
    _, without = runs
    kept = prompts_of(without)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for i, text in enumerate(kept):
        for earlier in kept[:i]:
            assert " ".join(text.lower().split()) != " ".join(earlier.lower().split())
            assert scorer.score(earlier, text)["rougeL"].fmeasure <= 0.7, (earlier, text)
    manifest = read_manifest(without)
    totals = manifest["totals"]
    assert totals["personas"] - totals["prompts_rejected"] == totals["records"] == len(kept)
    # every rejected candidate counted once: those flagged on a record, plus all the candidates
    # of each persona that kept no prompt (and so has no record to carry them)
    flagged = sum(
        f.startswith("prompt_rejected:")
        for r in read_records(without).to_pylist()
        for f in r["flags"]
    )
    dropped = NO_PERSONAS["prompts"]["candidates"] * totals["prompts_rejected"]
    assert sum(totals["prompt_rejections"].values()) == flagged + dropped


def test_exact_filter_removes_every_repeat_of_one_greedy_prompt(greedy_run):
    """Identical requests decoded greedily give one prompt: the first slot keeps it and each
    later slot's only candidate is its exact duplicate, so count - 1 slots are removed. Those
    slots yield no record, so the manifest counts rejections no record's flags carry."""
    records = read_records(greedy_run).to_pylist()
    slots = GREEDY["personas"]["count"]
    assert all(r["persona"] == "" for r in records)  # every request the same
    assert len(records) == 1 < slots  # recount: one kept prompt, the other slots removed
    totals = read_manifest(greedy_run)["totals"]
    rejections = {k: v for k, v in totals["prompt_rejections"].items() if v}
    assert rejections == {"prompt_rejected:duplicate": slots - 1}
    assert totals["prompts_rejected"] == slots - len(records) == slots - 1
    flagged = sum(f.startswith("prompt_rejected:") for r in records for f in r["flags"])
    assert flagged == 0 < totals["prompt_rejections"]["prompt_rejected:duplicate"]


def test_a_resumed_shard_is_filtered_against_the_same_earlier_prompts(runs, tmp_path):
    _, without = runs
    last = without / shard_name(1)
    before = last.read_bytes()
    last.unlink()
    config = str(without.parent / "config.yaml")
    proc = run_sao("generate", "-c", config, "--engine", "hf", "--out", str(without))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert last.read_bytes() == before


def test_report_numbers_side_by_side_and_page_in_chromium(runs, tmp_path):
    with_personas, without = runs
    html, js = tmp_path / "report.html", tmp_path / "report.json"
    proc = run_sao(
        "report", str(with_personas), "--baseline", str(without), "--html", str(html),
        "--json", str(js),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prompt repetition" in proc.stdout
    data = json.loads(js.read_text())
    run, base = data["runs"]["run"], data["runs"]["baseline"]
    for numbers, out in ((run, with_personas), (base, without)):
        prompts = prompts_of(out)
        assert numbers["records"] == len(prompts)
        assert numbers["prompts"]["repetition_rate"] == pytest.approx(brute_repetition(prompts))
        assert numbers["prompts"]["distinct_1"] == pytest.approx(distinct(prompts, 1))
        assert numbers["prompts"]["embedded"] == len(prompts)
        assert 1 <= numbers["prompts"]["vendi_score"] <= len(prompts)
        k = read_manifest(out)["config"]["responses"]["samples"]
        assert numbers["responses"]["count"] == k * len(prompts)
        assert numbers["judge"]["pairs"] == read_manifest(out)["totals"]["pairs"]
    assert base["persona_coverage"] is None and base["personas"] is False
    attrs = {p.id: p.attributes for p in load_library()}
    ids = read_records(with_personas)["persona_id"].to_pylist()
    for table, cov in run["persona_coverage"]["tables"].items():
        assert cov["hit"] == len({attrs[i][table] for i in ids})

    require_chromium()
    shot = ROOT / "test-artifacts" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    page = inspect_page(html, shot)
    assert page.section_ids == SECTIONS
    assert len(page.images) == 2
    assert all(img["loaded"] and img["inline"] and img["width"] > 300 for img in page.images)
    assert page.external_requests == [] and page.console_errors == []
    assert shot.stat().st_size > 10_000
    text = html.read_text()
    assert text.count('class="run"') >= 4 and text.count('class="baseline"') >= 4


def test_report_of_a_missing_run_is_one_line(tmp_path):
    proc = run_sao("report", str(tmp_path / "nothing"))
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def brute_repetition(texts: list[str]) -> float:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    hits = sum(
        any(scorer.score(texts[j], texts[i])["rougeL"].fmeasure > 0.7 for j in range(i))
        for i in range(len(texts))
    )
    return hits / len(texts)


def distinct(texts: list[str], n: int) -> float:
    from rouge_score.tokenizers import DefaultTokenizer

    tok = DefaultTokenizer(use_stemmer=False)
    grams = [
        tuple(ws[i : i + n])
        for t in texts
        for ws in [tok.tokenize(t)]
        for i in range(len(ws) - n + 1)
    ]
    return len(set(grams)) / len(grams)
