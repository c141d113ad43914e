"""The run-wide prompt filter: what each threshold removes, and nothing else."""

from __future__ import annotations

import pytest

from sao.config import FilterConfig, RunConfig, load_config
from sao.errors import SaoError
from sao.filter_feed import FilterFeed
from sao.stages.filters import PromptFilter
from sao.store import Store

KEPT = "How can I plan a two week sailing trip along the coast of Norway next summer?"


def feed(cfg: FilterConfig, texts: list[str]) -> list[str | None]:
    """Each text's rejection reason; kept texts join the filter, as in the prompt stage."""
    f = PromptFilter(cfg)
    reasons = []
    for text in texts:
        reason = f.reason(text)
        if reason is None:
            f.add(text)
        reasons.append(reason)
    return reasons


def test_each_filter_rejects_its_own_kind_of_repeat():
    cfg = FilterConfig(exact=True, near_duplicate=0.9, rouge_l=0.7)
    texts = [
        KEPT,
        "  how can I plan a two week SAILING trip along the coast of Norway next summer?",
        KEPT + " Thanks!",  # 14 of 15 word 3-grams shared: Jaccard 0.93
        "How could I plan a two week sailing trip on the coast of Norway next year?",  # ROUGE-L
        "What should I cook for a dinner party of six vegetarians?",
    ]
    assert feed(cfg, texts) == [None, "duplicate", "near_duplicate", "repetition", None]


def test_switched_off_filters_keep_everything():
    cfg = FilterConfig(exact=False, near_duplicate=None, rouge_l=None)
    assert not PromptFilter(cfg).active
    assert feed(cfg, [KEPT, KEPT, KEPT]) == [None, None, None]


def test_a_rejected_prompt_is_not_remembered():
    cfg = FilterConfig(exact=True, near_duplicate=None, rouge_l=0.7)
    texts = [
        "a b c d e f g h i j",
        "a b c d e f g h x y",  # F1 0.8 with the first: rejected
        "a b c d e f x y z w",  # F1 0.6 with the first; 0.8 with the rejected one: kept
    ]
    assert feed(cfg, texts) == [None, "repetition", None]


@pytest.mark.parametrize(
    "key,value",
    [("filters.near_duplicate", 0.3), ("filters.rouge_l", 1.5), ("filters.exact", "x")],
)
def test_bad_filter_settings_are_one_line_errors(key, value):
    with pytest.raises(SaoError, match=key):
        load_config(None, {key: value})


def a_record(prompt: str) -> dict:
    """A stored record with just a prompt (the other fields are null)."""
    return {"record_id": prompt[:8], "prompt": [{"role": "user", "content": prompt}]}


def test_the_feed_holds_exactly_the_prompts_of_earlier_shards(tmp_path):
    cfg = RunConfig()
    store = Store.open(tmp_path, {"config": cfg.data_dict(), "config_hash": cfg.data_hash()})
    sailing, bread = "What is a good name for a sailing dinghy?", "How do I bake sourdough at home?"
    store.commit(0, [a_record(sailing)], {})
    store.commit(2, [a_record(bread)], {})
    feed = FilterFeed(cfg, store)
    redo = feed.before(1)  # shard 1 was lost: it must see shard 0 and not shard 2
    assert redo.reason("what is a good name for a  sailing dinghy?") == "duplicate"
    assert redo.reason(bread) is None
    redo.add("Which tax forms do I need as a freelancer?")  # what the prompt stage does
    later = feed.before(3)
    assert later is redo and later.reason(bread) == "duplicate" and later.kept == 3
    off = RunConfig(filters=FilterConfig(exact=False, near_duplicate=None))
    assert FilterFeed(off, store).before(1) is None
