"""Assertions shared by the end-to-end tests of every engine."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import datasets

from sao.records import RECORD_SCHEMA
from sao.stages.judge import preference_matrix
from tests.conftest import ROOT, run_sao


def load_records(out: Path) -> datasets.Dataset:
    """What a user does: load the shards with datasets' arrow builder."""
    ds = datasets.load_dataset("arrow", data_files=str(out / "*.arrow"), split="train")
    assert ds.features.arrow_schema.names == RECORD_SCHEMA.names
    for field in RECORD_SCHEMA:
        assert ds.features.arrow_schema.field(field.name).type == field.type, field.name
    return ds


def check_records(records: list[dict], k: int) -> None:
    """K responses, matrix invariants, pairs ordered by score, P consistent with judgments."""
    assert records, "no records"
    for rec in records:
        assert len(rec["responses"]) == k
        assert all(r["text"] for r in rec["responses"])
        p = rec["pref_matrix"]
        assert len(p) == k and all(len(row) == k for row in p)
        for i, j in itertools.product(range(k), repeat=2):
            assert 0.0 <= p[i][j] <= 1.0
            assert math.isclose(p[i][j] + p[j][i], 1.0, abs_tol=1e-6)
        assert all(p[i][i] == 0.5 for i in range(k))
        assert [round(s, 5) for s in rec["scores"]] == [round(sum(r) / k, 5) for r in p]
        assert len(rec["judgments"]) == k * (k - 1)
        first_wins = {(j["i"], j["j"]): j["p_first"] for j in rec["judgments"]}
        rebuilt = preference_matrix(k, first_wins)
        for i, j in itertools.product(range(k), repeat=2):
            assert math.isclose(rebuilt[i][j], p[i][j], abs_tol=1e-6)
        for j in rec["judgments"]:
            assert set(json.loads(j["raw"])) == {"A", "B"}
        for pair in rec["pairs"]:
            assert rec["scores"][pair["chosen"]] > rec["scores"][pair["rejected"]]
            assert math.isclose(
                pair["margin"],
                rec["scores"][pair["chosen"]] - rec["scores"][pair["rejected"]],
                abs_tol=1e-5,
            )
        if not rec["pairs"]:
            assert any(f.startswith("no_pair:") for f in rec["flags"])


def check_reversal(result: dict, k: int, tol: float) -> None:
    """Reversing the responses reverses P; judging again reproduces the stored P."""
    stored, forward, backward = result["stored"], result["forward"], result["reversed"]
    for a, b in itertools.product(range(k), repeat=2):
        assert math.isclose(backward[a][b], forward[k - 1 - a][k - 1 - b], abs_tol=tol)
        assert math.isclose(forward[a][b], stored[a][b], abs_tol=tol)


def rejudge(engine: str, out: Path) -> dict:
    """Run tests/judge_reversal.py (a script: vLLM needs a __main__ guard) and parse its JSON."""
    proc = subprocess.run(
        [sys.executable, "tests/judge_reversal.py", engine, str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate_tiny(engine: str, out: Path, config: Path) -> subprocess.CompletedProcess:
    """`sao generate` with the tiny config on one engine; fails the test if the command fails."""
    proc = run_sao("generate", "-c", str(config), "--engine", engine, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
