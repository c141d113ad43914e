"""Persona coverage: how a run's personas spread over the attribute tables, and which attribute
values gave the most repetitive prompts.

Only bundled personas carry attributes (occupation, place, ...); for other sources the section
says so instead of guessing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import lru_cache

import yaml

from sao.personas import library_dir, load_library

MIN_SUPPORT = 3  # an attribute value needs this many prompts to be ranked by repetition
TOP_VALUES = 5


@lru_cache(maxsize=1)
def library_attributes() -> dict[str, dict[str, str]]:
    """persona id → attributes, for the bundled library."""
    return {p.id: p.attributes for p in load_library()}


@lru_cache(maxsize=1)
def table_sizes() -> dict[str, int]:
    """Number of values in each attribute table (personas/attributes/*.yaml)."""
    sizes = {}
    for path in sorted((library_dir() / "attributes").glob("*.yaml")):
        rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        sizes[path.stem] = len(rows)
    return sizes


def attributes_of(persona_ids: Sequence[str]) -> list[dict[str, str]]:
    """Attributes of each persona id ({} for personas outside the bundled library)."""
    known = library_attributes()
    return [known.get(pid, {}) for pid in persona_ids]


def coverage(attributes: Sequence[dict[str, str]], repeated: Sequence[bool]) -> dict:
    """Per attribute table: values hit, their normalised entropy, and the most repetitive values.

    `repeated[i]` says whether prompt i repeats an earlier one (the report's repetition rule).
    """
    with_attrs = [i for i, a in enumerate(attributes) if a]
    out: dict = {"personas_with_attributes": len(with_attrs), "tables": {}}
    if not with_attrs:
        return out
    sizes = table_sizes()
    for table, size in sizes.items():
        counts = Counter(attributes[i][table] for i in with_attrs if table in attributes[i])
        if not counts:
            continue
        out["tables"][table] = {
            "values": size,
            "hit": len(counts),
            "hit_share": len(counts) / size,
            "entropy": _normalised_entropy(counts, size),
            "most_sampled": counts.most_common(TOP_VALUES),
            "most_repetitive": _most_repetitive(
                [(attributes[i].get(table), repeated[i]) for i in with_attrs]
            ),
        }
    return out


def _normalised_entropy(counts: Counter, size: int) -> float:
    """Shannon entropy of the spread over a table's values, divided by log(values)."""
    total = sum(counts.values())
    if size < 2 or total == 0:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts.values())
    return h / math.log(size)


def _most_repetitive(rows: list[tuple[str | None, bool]]) -> list[dict]:
    """Values with at least MIN_SUPPORT prompts, by share of repeated prompts (highest first)."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for value, rep in rows:
        if value is not None:
            groups[value].append(rep)
    ranked = [
        {"value": v, "prompts": len(reps), "repetition_rate": sum(reps) / len(reps)}
        for v, reps in groups.items()
        if len(reps) >= MIN_SUPPORT and any(reps)
    ]
    ranked.sort(key=lambda r: (-r["repetition_rate"], -r["prompts"], r["value"]))
    return ranked[:TOP_VALUES]
