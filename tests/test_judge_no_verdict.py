"""The judge never guesses: labels the model does not say give no verdict, and no pair.

The embedded model is asked to answer with `ñ` or `ğ`, letters it all but never writes next
(10⁻⁵ of the probability at most, measured on the probes): every call's two labels carry far
less than `judge.min_label_mass`, so no cell may count as measured, no pair may be made, and
the records and totals must say why.
"""

from __future__ import annotations

import json
import math

import pytest

from sao.store import read_manifest, read_records
from tests.e2e_checks import check_records, check_run_diagnostics, generate_with

pytestmark = pytest.mark.slow
LABELS = ["ñ", "ğ"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nolabels")
    config = generate_with(
        "hf",
        tmp / "out",
        tmp,
        personas={"count": 2},
        responses={"samples": 3, "max_tokens": 24},
        judge={"labels": LABELS},
    )
    return tmp / "out", config


def test_no_cell_is_measured_and_no_pair_is_made(run):
    out, config = run
    records = read_records(out).to_pylist()
    assert records
    check_records(records, 3, config)  # P's invariants, recounted diagnostics
    floor = config["judge"]["min_label_mass"]
    for rec in records:
        calls = rec["judgments"]
        for call in calls:  # recomputed from the stored log-probs: far below the floor
            mass = sum(math.exp(v) for v in json.loads(call["raw"]).values())
            assert mass < floor, mass
            assert call["verdict"] == "unparsed" and call["p_first"] is None
        k = len(rec["responses"])
        assert all(rec["pref_estimated"][i][j] for i in range(k) for j in range(k) if i != j)
        assert rec["pairs"] == []
        stats = rec["judge_stats"]
        assert stats["pairs_judged"] == 0 and stats["estimated_cells"] == k * (k - 1) // 2
        assert stats["label_mass_failures"] == stats["parse_failures"] == len(calls)
        assert f"judge_no_label_mass:{len(calls)}" in rec["flags"]
        assert "no_pair:unmeasured" in rec["flags"]


def test_the_run_totals_count_the_calls_without_a_verdict(run):
    out, _ = run
    manifest = read_manifest(out)
    records = read_records(out).to_pylist()
    check_run_diagnostics(manifest, records)
    totals = manifest["totals"]
    calls = sum(len(r["judgments"]) for r in records)
    assert totals["judge"]["label_mass_failures"] == calls
    assert totals["pairs"] == 0
    assert totals["flags"]["no_pair:unmeasured"] == len(records)
