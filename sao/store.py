"""Arrow IPC shards and manifest.json: atomic commits, resume, and reading records back."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from sao.config import diff_keys
from sao.errors import SaoError
from sao.records import MANIFEST_NAME, RECORD_SCHEMA, SCHEMA_VERSION, SHARD_GLOB, shard_name


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def table_bytes(table: pa.Table) -> bytes:
    """Serialise a table as an Arrow IPC stream (the format `datasets` reads for .arrow)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_shard(path: Path) -> pa.Table:
    """Read one shard file."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


class Store:
    """One output folder: committed shards and the manifest describing them."""

    def __init__(self, out_dir: Path, manifest: dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.manifest = manifest

    @classmethod
    def open(cls, out_dir: str | Path, header: dict[str, Any]) -> Store:
        """Create or reopen an output folder; refuse one written with a different config."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".sao-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SaoError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
        path = out / MANIFEST_NAME
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SaoError(f"{path} is unreadable ({exc}); use a new --out folder") from None
            if old.get("config_hash") != header["config_hash"]:
                keys = diff_keys(old.get("config", {}), header["config"]) or ["config"]
                raise SaoError(
                    f"{out} holds a run with a different config ({', '.join(keys)} differ); "
                    "use another --out folder"
                )
            manifest = {**old, **header, "shards": old.get("shards", [])}
            manifest["created"] = old.get("created", manifest.get("created"))
        else:
            stray = sorted(p.name for p in out.glob(SHARD_GLOB))
            if stray:
                raise SaoError(
                    f"{out} has shards ({stray[0]}, ...) but no manifest; use a new --out"
                )
            manifest = {**header, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            manifest["shards"] = []
        manifest["schema_version"] = SCHEMA_VERSION
        manifest["status"] = "running"
        store = cls(out, manifest)
        store._write_manifest()
        return store

    def committed(self) -> set[int]:
        """Shard indices whose file is present with the row count and checksum on record."""
        done = set()
        for entry in self.manifest["shards"]:
            path = self.out_dir / entry["file"]
            if path.is_file() and sha256_file(path) == entry["sha256"]:
                done.add(entry["index"])
        return done

    def commit(self, index: int, records: list[dict], stats: dict[str, Any]) -> dict[str, Any]:
        """Write shard `index` atomically, then record it in the manifest."""
        data = table_bytes(pa.Table.from_pylist(records, schema=RECORD_SCHEMA))
        name = shard_name(index)
        write_atomic(self.out_dir / name, data)
        entry = {
            "index": index,
            "file": name,
            "rows": len(records),
            "sha256": hashlib.sha256(data).hexdigest(),
            "stats": stats,
        }
        shards = [s for s in self.manifest["shards"] if s["index"] != index] + [entry]
        self.manifest["shards"] = sorted(shards, key=lambda s: s["index"])
        self._write_manifest()
        return entry

    def finish(self, totals: dict[str, Any]) -> None:
        """Mark the run complete with its totals."""
        self.manifest["totals"] = totals
        self.manifest["status"] = "complete"
        self._write_manifest()

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2, sort_keys=False) + "\n"
        write_atomic(self.out_dir / MANIFEST_NAME, text.encode())


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """The manifest of an output folder."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise SaoError(f"{out_dir} has no {MANIFEST_NAME}: not a sao output folder")
    return json.loads(path.read_text(encoding="utf-8"))


def read_records(out_dir: str | Path) -> pa.Table:
    """All committed records of an output folder, in shard order."""
    manifest = read_manifest(out_dir)
    tables = [read_shard(Path(out_dir) / s["file"]) for s in manifest["shards"]]
    return pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()
