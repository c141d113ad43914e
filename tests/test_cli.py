"""The command line: bad input gives one clear line and a non-zero exit; dry runs; config init."""

from __future__ import annotations

import re

import pytest
import yaml

from sao.config import RunConfig
from tests.conftest import run_sao


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_config(tmp_path):
    proc = run_sao("generate", "-c", str(tmp_path / "nope.yaml"), "--dry-run")
    assert_one_line_error(proc, "config file not found", "nope.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("responses:\n  samples: [4\n")
    assert_one_line_error(run_sao("generate", "-c", str(path), "--dry-run"), "invalid YAML")


def test_unknown_engine():
    assert_one_line_error(run_sao("generate", "--engine", "tpu", "--dry-run"), "engine.name")


@pytest.mark.parametrize("model", ["no-such-model", "./tests"])
def test_unknown_model(model):
    assert_one_line_error(run_sao("generate", "--model", model, "--dry-run"), model)


def test_persona_file_with_malformed_line(tmp_path):
    path = tmp_path / "personas.jsonl"
    path.write_text('{"persona": "A baker."}\n{"persona": "A pilot."}\n{"persona": oops}\n')
    proc = run_sao("generate", "--persona-file", str(path), "--personas", "2", "--dry-run")
    assert_one_line_error(proc, "personas.jsonl", "line 3")


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_sao("generate", "--personas", "2", "--out", str(blocker / "out"))
    assert_one_line_error(proc, "not writable")
    assert blocker.read_text() == "not a folder"


def test_fewer_personas_than_requested(tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text('{"persona": "A baker."}\n{"persona": "A pilot."}\n')
    proc = run_sao("generate", "--persona-file", str(path), "--personas", "3", "--dry-run")
    assert_one_line_error(proc)


def test_dry_run_prints_config_and_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_sao("generate", "--personas", "10", "--samples", "3", "--out", str(out), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "resolved config" in proc.stdout
    assert "plan: 10 personas in 1 shards" in proc.stdout
    assert "60" in proc.stdout  # judge calls: 10 * 3 * 2
    assert not out.exists()


def test_no_personas_needs_no_persona_pool():
    # more slots than the bundled library has personas: only the ablation can plan this
    proc = run_sao("generate", "--no-personas", "--personas", "7000", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "enabled: false" in proc.stdout
    assert "plan: 7000 personas" in proc.stdout
    assert_one_line_error(run_sao("generate", "--personas", "7000", "--dry-run"), "only")


def test_no_filters_switches_every_prompt_filter_off():
    proc = run_sao("generate", "--no-filters", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    filters = yaml.safe_load(proc.stdout.split("resolved config", 1)[1].split("plan:", 1)[0])
    assert filters["filters"] == {"exact": False, "near_duplicate": None, "rouge_l": None}


def test_config_init_writes_a_valid_config_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "sao.yaml"
    assert run_sao("config", "init", str(path)).returncode == 0
    assert RunConfig.model_validate(yaml.safe_load(path.read_text())) == RunConfig()
    assert_one_line_error(run_sao("config", "init", str(path)), "exists")


def test_dry_run_plans_the_judge_mode_and_its_budget():
    def judge_calls(*flags: str) -> int:
        args = ("generate", "--personas", "10", "--samples", "6", "--dry-run", *flags)
        row = re.search(r"judge\s*│\s*([\d,]+)\s*│", run_sao(*args).stdout)
        assert row, "no judge row in the plan"
        return int(row.group(1).replace(",", ""))

    assert judge_calls() == 300  # all 15 pairs, both orders: 10 * 30
    assert judge_calls("--judge-mode", "rubric") == 60  # one call per answer: 10 * 6
    assert judge_calls("--judge-opponents", "2") == 120  # the ring: 6 pairs, both orders


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (None, ["probe file not found"]),
        (
            '{"prompt": "Hi", "better": "Hello!", "worse": "Go away."}\n{"prompt": "x"}\n',
            ["line 2", "better"],
        ),
        ("[1, 2]\n", ["line 1", "JSON object"]),
        ("", ["no probes"]),
    ],
)
def test_judge_eval_bad_probe_files(tmp_path, content, fragments):
    path = tmp_path / "probes.jsonl"
    if content is not None:
        path.write_text(content)
    assert_one_line_error(run_sao("judge-eval", str(path)), *fragments)


def test_judge_eval_unknown_mode():
    assert_one_line_error(run_sao("judge-eval", "--modes", "pairwise,rubric"), "unknown judge mode")
