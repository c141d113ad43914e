"""`sao verify`: check an output folder against its manifest, one line per problem.

Checked: the manifest parses; every listed shard exists, has the SHA-256 and row count on
record, reads as Arrow with the record schema and holds its own shard index; no shard file is
unlisted; record ids are unique across the run; every preference matrix is K×K with P[i][j] +
P[j][i] = 1, a diagonal of ½ and values in [0, 1]; scores are its row means; pairs name two
different answers; a complete run's totals match its shards; the config on record still hashes
to its `config_hash`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from sao.config import hash_data
from sao.hashing import sha256_file
from sao.records import MANIFEST_NAME, RECORD_SCHEMA, SHARD_GLOB
from sao.store import read_shard

TOLERANCE = 1e-5  # float32 storage of P


def verify(out_dir: str | Path) -> tuple[list[str], dict[str, int]]:
    """Problems found (empty when the folder is sound) and what was checked."""
    out = Path(out_dir)
    checked = {"shards": 0, "records": 0}
    manifest, problem = _manifest(out)
    if manifest is None:
        return [problem], checked
    problems: list[str] = []
    ids: dict[str, str] = {}
    listed = set()
    for entry in manifest.get("shards", []):
        listed.add(entry.get("file"))
        table = _shard(out, entry, problems)
        if table is None:
            continue
        checked["shards"] += 1
        checked["records"] += table.num_rows
        for record in table.to_pylist():
            where = f"{entry['file']} record {record['record_id']}"
            if record["record_id"] in ids:
                problems.append(f"{where}: record_id also in {ids[record['record_id']]}")
            ids[record["record_id"]] = entry["file"]
            if record["shard"] != entry["index"]:
                problems.append(f"{where}: shard field {record['shard']} != {entry['index']}")
            problems.extend(f"{where}: {p}" for p in record_problems(record))
    for stray in sorted(p.name for p in out.glob(SHARD_GLOB)):
        if stray not in listed:
            problems.append(f"{stray}: shard file not listed in the manifest")
    problems.extend(_totals(manifest, checked))
    problems.extend(_config_hash(manifest))
    return problems, checked


def _config_hash(manifest: dict[str, Any]) -> list[str]:
    """The config on record must still hash to its `config_hash` (RunConfig.data_hash)."""
    config = manifest.get("config")
    if not isinstance(config, dict) or hash_data(config) != manifest.get("config_hash"):
        return [f"{MANIFEST_NAME}: config does not match its config_hash (edited by hand?)"]
    return []


def _manifest(out: Path) -> tuple[dict[str, Any] | None, str]:
    path = out / MANIFEST_NAME
    if not out.is_dir():
        return None, f"{out}: not a folder"
    if not path.is_file():
        return None, f"{path}: missing (not a sao output folder)"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path}: unreadable ({exc})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        return None, f"{path}: no list of shards"
    for entry in manifest["shards"]:
        if not isinstance(entry, dict) or not {"index", "file", "rows", "sha256"} <= set(entry):
            return None, f"{path}: a shard entry lacks index, file, rows or sha256"
    return manifest, ""


def _shard(out: Path, entry: dict[str, Any], problems: list[str]) -> pa.Table | None:
    """The shard's table if its bytes are the ones on record; problems otherwise."""
    name, path = entry["file"], out / entry["file"]
    if not path.is_file():
        problems.append(f"{name}: missing")
        return None
    if sha256_file(path) != entry["sha256"]:
        problems.append(f"{name}: SHA-256 differs from the manifest (changed or truncated)")
    try:
        table = read_shard(path)
    except (OSError, pa.ArrowInvalid) as exc:
        problems.append(f"{name}: not a readable Arrow stream ({str(exc).splitlines()[0]})")
        return None
    if not table.schema.equals(RECORD_SCHEMA, check_metadata=False):
        problems.append(f"{name}: schema differs from the record schema")
        return None
    if table.num_rows != entry["rows"]:
        problems.append(f"{name}: {table.num_rows} rows, the manifest says {entry['rows']}")
    return table


def record_problems(record: dict[str, Any]) -> Iterator[str]:
    """What is wrong with one record's matrix, scores and pairs (nothing when sound)."""
    p, k = record["pref_matrix"] or [], len(record["responses"] or [])
    if len(p) != k or any(len(row) != k for row in p):
        yield f"pref_matrix is not {k}×{k}"
        return
    if any(cell is None for row in p for cell in row) or None in (record["scores"] or []):
        yield "pref_matrix or scores hold null cells"
        return
    for i in range(k):
        if not math.isclose(p[i][i], 0.5, abs_tol=TOLERANCE):
            yield f"P[{i}][{i}] = {p[i][i]}, not 1/2"
        for j in range(k):
            if not 0 <= p[i][j] <= 1:
                yield f"P[{i}][{j}] = {p[i][j]} outside [0, 1]"
            if j > i and not math.isclose(p[i][j] + p[j][i], 1, abs_tol=TOLERANCE):
                yield f"P[{i}][{j}] + P[{j}][{i}] = {p[i][j] + p[j][i]:.6f}, not 1"
    scores = record["scores"] or []
    means = [sum(row) / k for row in p]
    if len(scores) != k or any(
        not math.isclose(s, m, abs_tol=TOLERANCE) for s, m in zip(scores, means, strict=True)
    ):
        yield "scores are not the row means of pref_matrix"
    for pair in record["pairs"] or []:
        if not (0 <= pair["chosen"] < k and 0 <= pair["rejected"] < k):
            yield f"pair {pair['chosen']}>{pair['rejected']} names a missing answer"
        elif pair["chosen"] == pair["rejected"]:
            yield f"pair {pair['chosen']}>{pair['rejected']} compares an answer with itself"


def _totals(manifest: dict[str, Any], checked: dict[str, int]) -> list[str]:
    totals = manifest.get("totals")
    if manifest.get("status") != "complete" or not isinstance(totals, dict):
        return []
    if totals.get("records") != checked["records"]:
        return [f"{MANIFEST_NAME}: totals say {totals.get('records')} records, shards hold "
                f"{checked['records']}"]  # fmt: skip
    return []
