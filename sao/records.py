"""The Arrow schema of a record and the manifest's field names: the only place they live."""

from __future__ import annotations

import hashlib

import pyarrow as pa

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_GLOB = "shard-*.arrow"

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
RESPONSE = pa.struct(
    [
        ("text", pa.string()),
        ("finish_reason", pa.string()),
        ("num_tokens", pa.int32()),
        ("seed", pa.int64()),
    ]
)
JUDGMENT = pa.struct(
    [
        ("i", pa.int32()),  # response shown first
        ("j", pa.int32()),  # response shown second
        ("order", pa.string()),  # "forward" when i < j, "swapped" when the pair was shown reversed
        ("p_first", pa.float32()),  # probability that the response shown first wins
        ("raw", pa.string()),  # JSON of the verdict labels' log-probabilities
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
        ("scores", pa.list_(pa.float32())),
        ("judgments", pa.list_(JUDGMENT)),
        ("pairs", pa.list_(PAIR)),
        ("flags", pa.list_(pa.string())),
    ],
    metadata={"sao_schema_version": str(SCHEMA_VERSION)},
)


def record_id(seed: int, persona_id: str) -> str:
    """Stable id of a record: a hash of the run seed and the persona it came from."""
    return hashlib.sha256(f"{seed}\x00{persona_id}".encode()).hexdigest()[:20]


def shard_name(index: int) -> str:
    """File name of shard `index`."""
    return f"shard-{index:05d}.arrow"


def to_table(records: list[dict]) -> pa.Table:
    """Build an Arrow table of records (dicts keyed by the schema's field names)."""
    return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)
