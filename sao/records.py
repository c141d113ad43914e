"""The Arrow schema of a record and the manifest's field names: the only place they live."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = 5
MANIFEST_NAME = "manifest.json"
SHARD_GLOB = "shard-*.arrow"

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
RESPONSE = pa.struct(
    [
        ("text", pa.string()),
        ("finish_reason", pa.string()),
        ("num_tokens", pa.int32()),
        ("seed", pa.int64()),  # the seed that produced the answer (sao.seeds)
        ("seed_row", pa.int32()),  # hf: the answer's row in the batch `seed` drew; else null
        ("reasoning", pa.string()),  # the answer's reasoning, with reasoning.keep; else null
    ]
)
JUDGMENT = pa.struct(
    [
        ("i", pa.int32()),  # pairwise: answer shown first; rubric: the answer scored
        ("j", pa.int32()),  # pairwise: answer shown second; rubric: null
        ("order", pa.string()),  # "forward" (i < j), "swapped" (i > j) or "pointwise" (rubric)
        ("p_first", pa.float32()),  # p(first wins); text: 1, 0 or null when unparsed
        ("score", pa.float32()),  # rubric: the answer's score (0-5); null otherwise
        ("verdict", pa.string()),  # "first" | "second" | rubric score | "unparsed"
        ("tokens", pa.int32()),  # tokens the judge generated for this call
        ("raw", pa.string()),  # label log-probs as JSON, or the judge's generated text
    ]
)
JUDGE_STATS = pa.struct(
    [
        ("mode", pa.string()),
        ("calls", pa.int32()),  # judge engine calls for this record
        ("generated_tokens", pa.int32()),
        ("pairs_judged", pa.int32()),  # unordered pairs with a measured P cell
        ("estimated_cells", pa.int32()),  # unordered pairs filled by the Bradley-Terry fit
        ("decisive_pairs", pa.int32()),  # pairs whose two single-order verdicts are both decided
        ("position_flips", pa.int32()),  # ... and pick different answers (the order decided)
        ("position_bias_rate", pa.float32()),  # flips / decisive pairs; null for rubric
        ("first_wins_rate", pa.float32()),  # single-order verdicts for the answer shown first
        ("ties", pa.int32()),  # measured cells with |P - 1/2| <= tie_band
        ("tie_rate", pa.float32()),
        ("intransitive_triples", pa.int32()),  # triples whose 3 preferences (no tie) circle
        ("parse_failures", pa.int32()),  # calls with no verdict (unparsable or no label mass)
        ("label_mass_failures", pa.int32()),  # ... of them logprob calls: labels absent/weak
        ("pair_margin_mean", pa.float32()),  # over the selected pairs; null when none
        ("length_corr", pa.float32()),  # Pearson(score, tokens) over the K answers; null if flat
    ]
)
PAIR = pa.struct(
    [
        ("chosen", pa.int32()),
        ("rejected", pa.int32()),
        ("margin", pa.float32()),
        ("strategy", pa.string()),
    ]
)

RECORD_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("shard", pa.int32()),
        ("persona_id", pa.string()),
        ("persona", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("responses", pa.list_(RESPONSE)),
        ("pref_matrix", pa.list_(pa.list_(pa.float32()))),
        ("pref_estimated", pa.list_(pa.list_(pa.bool_()))),  # True: cell from Bradley-Terry
        ("scores", pa.list_(pa.float32())),
        ("judgments", pa.list_(JUDGMENT)),
        ("pairs", pa.list_(PAIR)),
        ("judge_stats", JUDGE_STATS),
        ("judge_model", pa.string()),  # the model that judged: judge.model, else the generator
        ("flags", pa.list_(pa.string())),
    ],
    metadata={"sao_schema_version": str(SCHEMA_VERSION)},
)


def record_id(seed: int, persona_id: str) -> str:
    """Stable id of a record: a hash of the run seed and the persona it came from."""
    return hashlib.sha256(f"{seed}\x00{persona_id}".encode()).hexdigest()[:20]


def as_stored(value: float) -> float:
    """`value` as a float32 field of the record holds it (P, scores, margins)."""
    return float(np.float32(value))


def shard_name(index: int) -> str:
    """File name of shard `index`."""
    return f"shard-{index:05d}.arrow"


def to_table(records: list[dict]) -> pa.Table:
    """Build an Arrow table of records (dicts keyed by the schema's field names)."""
    return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)
