"""Independent re-derivations of a stored record's P and judge diagnostics from its judgments."""

from __future__ import annotations

import itertools
import json
import math

POINTWISE = {"rubric": "rubric_scale", "reward-model": "reward_scale"}  # mode: its scale key


def measured_cells(rec: dict, judge_cfg: dict) -> dict[tuple[int, int], float]:
    """P[i][j] (i < j) for every pair the judge measured, recomputed from the raw judgments."""
    k = len(rec["responses"])
    cells = {}
    if judge_cfg["mode"] in POINTWISE:
        scores = {j["i"]: j["score"] for j in rec["judgments"]}
        if judge_cfg["mode"] == "reward-model":  # the raw reward, before its float32 copy
            scores = {j["i"]: json.loads(j["raw"])["reward"] for j in rec["judgments"]}
        scale = judge_cfg[POINTWISE[judge_cfg["mode"]]]
        for i, j in itertools.combinations(range(k), 2):
            if scores[i] is not None and scores[j] is not None:
                gap = (scores[i] - scores[j]) / scale
                cells[(i, j)] = 1.0 / (1.0 + math.exp(-gap))
        return cells
    first = {(j["i"], j["j"]): j["p_first"] for j in rec["judgments"]}
    for (i, j), p in first.items():
        if i < j and p is not None and first[(j, i)] is not None:
            cells[(i, j)] = 0.5 * (p + 1.0 - first[(j, i)])
    return cells


def check_judge(rec: dict, judge_cfg: dict) -> None:
    """P's invariants, measured cells equal to the raw judgments, diagnostics recounted."""
    k = len(rec["responses"])
    p, est, stats = rec["pref_matrix"], rec["pref_estimated"], rec["judge_stats"]
    mode = judge_cfg["mode"]
    assert stats["mode"] == mode
    for i, j in itertools.product(range(k), repeat=2):
        assert 0.0 <= p[i][j] <= 1.0
        assert math.isclose(p[i][j] + p[j][i], 1.0, abs_tol=1e-6)
        assert est[i][j] == est[j][i]
    assert all(p[i][i] == 0.5 and not est[i][i] for i in range(k))
    assert [round(s, 5) for s in rec["scores"]] == [round(sum(r) / k, 5) for r in p]
    cells = measured_cells(rec, judge_cfg)
    for i, j in itertools.combinations(range(k), 2):
        assert est[i][j] == ((i, j) not in cells), (i, j)
        if (i, j) in cells:
            assert math.isclose(p[i][j], cells[(i, j)], abs_tol=1e-5)
    judgments = rec["judgments"]
    for j in judgments:
        if no_label_verdict(j, judge_cfg):
            assert j["verdict"] == "unparsed" and j["p_first"] is None and j["score"] is None
    unparsed = sum(j["verdict"] == "unparsed" for j in judgments)
    assert stats["calls"] == len(judgments)
    assert stats["generated_tokens"] == sum(j["tokens"] for j in judgments)
    assert stats["parse_failures"] == unparsed
    assert (f"judge_parse_failure:{unparsed}" in rec["flags"]) == (unparsed > 0)
    assert stats["pairs_judged"] == len(cells)
    assert stats["estimated_cells"] == k * (k - 1) // 2 - len(cells)
    band = judge_cfg["tie_band"]  # a cell within the band of ½ is a tie, and breaks a cycle
    ties = sum(abs(v - 0.5) <= band for v in cells.values())
    assert stats["ties"] == ties
    wins = {(a, b): p[a][b] > 0.5 + band for a, b in itertools.permutations(range(k), 2)}
    cycles = sum(
        (wins[(a, b)] and wins[(b, c)] and wins[(c, a)])
        or (wins[(b, a)] and wins[(c, b)] and wins[(a, c)])
        for a, b, c in itertools.combinations(range(k), 3)
    )
    assert stats["intransitive_triples"] == cycles
    no_mass = sum(no_label_verdict(j, judge_cfg) for j in judgments)
    assert stats["label_mass_failures"] == no_mass
    assert (f"judge_no_label_mass:{no_mass}" in rec["flags"]) == (no_mass > 0)
    if mode in POINTWISE:
        assert len(judgments) == k and all(j["order"] == "pointwise" for j in judgments)
        assert stats["position_bias_rate"] is None
        for j in judgments:
            if mode == "reward-model":
                assert j["tokens"] == 0 and j["verdict"] == "reward"
                assert math.isclose(j["score"], json.loads(j["raw"])["reward"], rel_tol=1e-6)
            elif j["verdict"] != "unparsed":
                assert 0.0 <= j["score"] <= 5.0
        return
    verdict = {(j["i"], j["j"]): j["verdict"] for j in judgments}
    decisive = flips = 0
    for (i, j), v in verdict.items():
        w = verdict[(j, i)]
        if i < j and {v, w} <= {"first", "second"}:
            decisive += 1
            flips += v == w  # both orders chose the same position, not the same answer
    assert (stats["decisive_pairs"], stats["position_flips"]) == (decisive, flips)
    if decisive:
        assert math.isclose(stats["position_bias_rate"], flips / decisive, rel_tol=1e-5)
    for j in judgments:
        assert j["order"] == ("forward" if j["i"] < j["j"] else "swapped")
        if mode == "pairwise-logprob":
            assert j["tokens"] == 1 and set(json.loads(j["raw"])) == set(judge_cfg["labels"])
        elif j["verdict"] == "unparsed":
            assert j["p_first"] is None
        else:
            assert j["p_first"] == (1.0 if j["verdict"] == "first" else 0.0)


def no_label_verdict(judgment: dict, judge_cfg: dict) -> bool:
    """A logprob call whose labels were absent or carried less than `min_label_mass`."""
    if judge_cfg["mode"] in ("pairwise-text", "reward-model"):
        return False
    try:
        lp = json.loads(judgment["raw"])
    except ValueError:
        return False
    if judge_cfg["mode"] == "rubric" and set(lp) != {str(n) for n in range(6)}:
        return False  # a JSON-scored rubric reply, not label log-probabilities
    if judge_cfg["mode"] == "pairwise-logprob" and -math.inf in lp.values():
        return True
    return sum(math.exp(v) for v in lp.values()) < judge_cfg["min_label_mass"]


def check_pairs(rec: dict, pairs_cfg: dict) -> None:
    """Selected pairs follow the strategy: ordered by score, margins, length control."""
    scores = rec["scores"]
    for pair in rec["pairs"]:
        c, r = pair["chosen"], pair["rejected"]
        assert pair["strategy"] == pairs_cfg["strategy"]
        assert scores[c] > scores[r]
        assert math.isclose(pair["margin"], scores[c] - scores[r], abs_tol=1e-5)
        assert pair["margin"] >= pairs_cfg["min_margin"] - 1e-6
        ratio = pairs_cfg["max_length_ratio"]
        if ratio is not None:
            tokens = [x["num_tokens"] for x in rec["responses"]]
            assert tokens[c] <= ratio * max(tokens[r], 1)
    if pairs_cfg["strategy"] == "best-worst":
        assert len(rec["pairs"]) <= 1
    if not rec["pairs"]:
        assert any(f.startswith("no_pair:") for f in rec["flags"])
    margins = [p["margin"] for p in rec["pairs"]]
    mean = rec["judge_stats"]["pair_margin_mean"]
    assert (mean is None) == (not margins)
    if margins:
        assert math.isclose(mean, sum(margins) / len(margins), abs_tol=1e-5)
