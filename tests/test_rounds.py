"""`sao iterate`'s pure parts: the iterate file, persona slices, the measures, the stop rules,
the ledger's digest chain. No model loads here; the loop itself runs in test_iterate_long.py."""

from __future__ import annotations

import copy
import os
import random
import re

import pytest
import yaml

from sao.config import RunConfig
from sao.errors import SaoError
from sao.personas import choose_personas, load_personas
from sao.rounds import measures
from sao.rounds.config import StopRules, load_iterate_config
from sao.rounds.ledger import Ledger, chain_breaks
from sao.text.ngrams import repeated_ngram_rate
from tests.conftest import run_sao


def write(tmp_path, data) -> str:
    path = tmp_path / "it.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_persona_slices_are_disjoint_and_leave_old_hashes_alone():
    pool = load_personas("bundled")
    order = list(range(len(pool)))
    random.Random(5).shuffle(order)  # the sampler's documented draw, recomputed
    slices = []
    for skip in (0, 3, 7):
        cfg = RunConfig.model_validate({"seed": 5, "personas": {"count": 4, "skip": skip}})
        chosen, about = choose_personas(cfg)
        assert [p.id for p in chosen] == [pool[i].id for i in order[skip : skip + 4]]
        assert about.get("skipped", 0) == skip
        slices.append({p.id for p in chosen})
    assert slices[0] & slices[1] == {pool[order[3]].id}  # 0..3 and 3..6 share index 3 only
    assert not slices[1] & slices[2]
    # a run without a skip hashes as it did before `personas.skip` existed
    plain = RunConfig.model_validate({"seed": 5})
    assert "skip" not in plain.data_dict()["personas"]
    skipped = RunConfig.model_validate({"seed": 5, "personas": {"skip": 2}})
    assert skipped.data_hash() != plain.data_hash()


def test_iterate_file_sections(tmp_path):
    # judge.engine is kept for the rounds a judge model judges, not refused for lack of one
    engine = {"engine": {"gpu_memory_utilization": 0.4}}
    kept = load_iterate_config(write(tmp_path, {"judge": engine}))
    assert kept.judge_engine == engine["engine"]
    assert kept.config_dict()["run"]["judge"]["engine"] == engine["engine"]
    loaded = load_iterate_config(
        write(
            tmp_path,
            {
                "seed": 3,
                "personas": {"count": 2},
                "train": {"learning_rate": 1e-6, "batch_size": 2},
                "iterate": {"rounds": 2, "trainer": "kto", "judge": "self"},
            },
        )
    )
    assert loaded.run.seed == 3
    assert loaded.train.algo == "kto" and loaded.train.learning_rate == 1e-6
    assert loaded.iterate.judge == "self"


def test_a_ledger_takes_more_rounds_and_refuses_other_settings(tmp_path):
    def loaded(**iterate):
        data = {"seed": 3, "iterate": {"rounds": 2, **iterate}}
        return load_iterate_config(write(tmp_path, data))

    models = {"initial_model": {"name": "m", "digest": "m0"}}
    out = tmp_path / "loop"
    first = Ledger.open(out, loaded(), models)
    with pytest.raises(SaoError, match="another sao iterate is writing"):
        Ledger.open(out, loaded(), models)  # the folder is locked while a loop runs
    os.close(first.lock)
    answers = out / "round-2" / "eval.json"
    answers.parent.mkdir(parents=True)
    answers.write_text("{}")
    first.data["stages"].append(
        {"stage": "evaluate", "round": 2, "output": "round-2/eval.json", "digest": "x"}
    )
    first.save()
    for changed, said in (
        ({"personas": 5}, "other settings (iterate.personas)"),
        ({"rounds": 1}, "below round 2"),
    ):
        with pytest.raises(SaoError, match=re.escape(said)):
            Ledger.open(out, loaded(**changed), models)
    with pytest.raises(SaoError, match="initial_model weights"):
        Ledger.open(out, loaded(), {"initial_model": {"name": "m", "digest": "m1"}})
    # more rounds and other stop rules pass the settings check (then the outputs are checked:
    # this round-2 entry's digest is not its file's)
    with pytest.raises(SaoError, match="changed after round 2's evaluate"):
        Ledger.open(out, loaded(rounds=4, stop={"no_win": True}), models)


def test_judge_engine_how_keys_stay_out_of_the_hash_as_a_runs_do(tmp_path):
    def hashed(judge_engine: dict) -> str:
        data = {"seed": 3, "iterate": {"judge": "initial"}, "judge": {"engine": judge_engine}}
        return load_iterate_config(write(tmp_path, data)).config_hash()

    how = {"patience_s": 7, "timeout_s": 9, "replicas": 2}  # how a judge runs, not what it says
    assert hashed({"vllm_args": {"enforce_eager": True}}) == hashed(
        {"vllm_args": {"enforce_eager": True}, **how}
    )
    assert hashed({"dtype": "float32"}) != hashed({"dtype": "bfloat16"})  # what it says


def test_a_changed_default_beta_is_hashed_as_its_value(tmp_path):
    """sppo's default β changed (0.1 → SPPO's 0.001): a β left out is hashed as its value
    there (and in `sao train`'s folder settings, the same dict), so a loop made under the old
    default is refused; where the default never changed, null stays null and old loops match."""

    def config(trainer: str, beta: float | None) -> dict:
        data = {"iterate": {"trainer": trainer}, "train": {"beta": beta}}
        return load_iterate_config(write(tmp_path, data)).config_dict()

    assert config("sppo", None) == config("sppo", 0.001)  # SPPO's η = 1/β = 1000
    assert config("sppo", None) != config("sppo", 0.1)
    for trainer in ("dpo", "ipo", "sppo-hard", "simpo", "kto"):
        assert config(trainer, None)["train"]["beta"] is None  # as every earlier loop stored it


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"iterate": {"trainer": "ppo"}}, "trainer 'ppo'"),
        ({"iterate": {"trainer": "command"}}, "iterate.trainer command needs train.command"),
        ({"train": {"model": "x"}}, "train.model is set by each round"),
        ({"judge": {"model": "x"}}, "judge.model is set by iterate.judge"),
        ({"engine": {"name": "openai"}}, "engine openai serves a fixed model"),
        ({"iterate": {"roundz": 2}}, "did you mean 'rounds'"),
        ({"iterate": {"trainer": "kto"}, "train": {"batch_size": 1}}, "KTO needs at least 2"),
        ({"iterate": {"reference": "latest"}}, "iterate.reference"),
        ({"iterate": "3 rounds"}, "iterate: should be a mapping"),
        ({"train": {"calibration": {"low": 0.5}}}, "calibration: only soft SPPO"),
        ({"judge": {"mode": "reward-model"}}, "iterate's judges are the policies"),
        ({"judge": {"engine": {"gpu_memory_utilisation": 0.4}}}, "unknown engine key"),
        (
            {"iterate": {"trainer": "sppo"}, "train": {"calibration": {"low": 0.9, "high": 0.5}}},
            "high must be above low",
        ),
    ],
)
def test_iterate_file_refusals(tmp_path, data, expected):
    with pytest.raises(SaoError, match=expected.replace("(", r"\(")):
        load_iterate_config(write(tmp_path, data))


def test_duel_outcomes_recounted():
    rng = random.Random(0)
    ps = [rng.choice([0.5, 0.52, 0.7, 0.2, 0.9, 0.45]) for _ in range(200)]
    lengths = [(rng.randint(1, 60), rng.randint(1, 60)) for _ in range(200)]
    got = measures.duel_outcomes(ps, lengths, band=0.05, length_match=1.25)
    wins = sum(p > 0.55 for p in ps)
    losses = sum(p < 0.45 for p in ps)
    assert got["win_rate"] == wins / 200
    assert got["loss_rate"] == losses / 200
    assert got["tie_rate"] == (200 - wins - losses) / 200
    matched = [p for p, (a, b) in zip(ps, lengths, strict=True) if max(a, b) <= 1.25 * min(a, b)]
    assert got["length_matched"]["duels"] == len(matched)
    assert got["length_matched"]["win_rate"] == sum(p > 0.55 for p in matched) / len(matched)


def test_repeated_ngram_rate_by_hand():
    # "a b c a b c a": 3-grams abc bca cab abc bca → 5, of which 2 repeat an earlier one
    assert repeated_ngram_rate("a b c a b c a") == pytest.approx(2 / 5)
    assert repeated_ngram_rate("one two three four") == 0.0
    assert repeated_ngram_rate("too short") == 0.0


def figures(tokens, d2, kl=None, win=None, loss=None):
    return {
        "degeneration": {"mean_tokens": tokens, "distinct_2": d2},
        "kl_initial": {"kl": kl},
        "vs_previous": {"win_rate": win, "loss_rate": loss},
    }


def test_stop_rules():
    first = figures(100.0, 0.8)
    rules = StopRules(length_growth=1.5, distinct2_drop=0.25, kl_max=2.0, no_win=True)
    assert measures.fired_rule(rules, first, figures(110, 0.79, 0.5, 0.4, 0.3)) is None
    assert measures.fired_rule(rules, first, figures(151, 0.8)).startswith("length_growth")
    assert measures.fired_rule(rules, first, figures(100, 0.6)).startswith("distinct2_drop")
    assert measures.fired_rule(rules, first, figures(100, 0.8, 2.5)).startswith("kl_max")
    assert measures.fired_rule(rules, first, figures(100, 0.8, 1.0, 0.3, 0.3)).startswith("no_win")
    off = StopRules(length_growth=None, distinct2_drop=None, kl_max=None, no_win=False)
    assert measures.fired_rule(off, first, figures(900, 0.1, 9.0, 0.0, 1.0)) is None


def test_best_round_counts_ties_half_and_pi0_as_half():
    def duel(win, tie):
        return {"vs_initial": {"win_rate": win, "tie_rate": tie}}

    assert measures.best_round({0: {}, 1: duel(0.3, 0.2), 2: duel(0.35, 0.0)}) == 0
    assert measures.best_round({0: {}, 1: duel(0.4, 0.4), 2: duel(0.55, 0.0)}) == 1
    assert measures.best_round({0: {}, 1: duel(0.6, 0.0), 2: duel(0.6, 0.0)}) == 1


def test_chain_breaks_finds_each_broken_link():
    def entry(stage, r, digest, **links):
        return {"stage": stage, "round": r, "digest": digest, **links}

    good = {
        "initial_model": {"digest": "m0"},
        "stages": [
            entry("anchors", 0, "a", generator_digest="m0"),
            entry("evaluate", 0, "e0", policy_digest="m0"),
            entry("generate", 1, "d1", generator_digest="m0"),
            entry("train", 1, "m1", data_digest="d1"),
            entry("evaluate", 1, "e1", policy_digest="m1"),
            entry("generate", 2, "d2", generator_digest="m1"),
        ],
    }
    assert chain_breaks(good) == []
    for index, key, wrong, said in (
        (5, "generator_digest", "m0", "generator is not round 1's model"),
        (3, "data_digest", "d2", "trained on other data"),
        (4, "policy_digest", "m0", "evaluated another policy"),
    ):
        bad = copy.deepcopy(good)
        bad["stages"][index][key] = wrong
        assert any(said in b for b in chain_breaks(bad))


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"iterate": {"trainer": "ppo"}}, "trainer 'ppo'"),
        # checked before the loop's first stage, not after round 1's generation
        ({"train": {"trainer_args": {"no_such_arg": 1}}}, "not a field of TRL's DPOConfig"),
        ({"train": {"trainer_args": {"optim": "nope"}}}, "TRL refused the training settings"),
    ],
)
def test_iterate_cli_refuses_in_one_line(tmp_path, data, said):
    proc = run_sao("iterate", "-c", write(tmp_path, data), "-o", str(tmp_path / "loop"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], proc.stderr
    assert not (tmp_path / "loop").exists()
