"""Arrow IPC shards and manifest.json: atomic commits, resume, and reading records back."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from sao import failpoints
from sao.config import diff_keys
from sao.errors import SaoError
from sao.hashing import sha256_file
from sao.interrupts import dropped_on_resume, held
from sao.records import MANIFEST_NAME, RECORD_SCHEMA, SCHEMA_VERSION, SHARD_GLOB, shard_name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder;
    the file gets the usual permissions (`mkstemp` makes it private)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def staging_folder(out: Path) -> Path:
    """A fresh hidden folder beside `out` to build it in, with the usual permissions
    (`mkdtemp` makes it private; what is built in it is not)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        staging.chmod(0o777 & ~current_umask())
    except OSError as exc:
        raise SaoError(f"cannot write {out}: {exc.strerror or exc}") from None
    return staging


def swap_in(staging: Path, out: Path) -> Path:
    """Rename a finished staging folder to `out`, replacing what was there: the old folder is
    moved aside first and put back if the rename fails, so `out` is never lost."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


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


# what a manifest without a seed scheme used: why such a run is not resumed
OLD_SEEDING = "request i seeded base + i, so neighbouring prompts' samples shared seeds"

REPORT_FILES = ("report.html", "report.json")  # `sao report`'s defaults, stale once replaced


class Store:
    """One output folder: committed shards and the manifest describing them."""

    def __init__(self, out_dir: Path, manifest: dict[str, Any]) -> None:
        self.out_dir = out_dir
        self.manifest = manifest
        self.lock: int | None = None  # a descriptor of the folder, flock-ed while open

    @classmethod
    def open(cls, out_dir: str | Path, header: dict[str, Any], mode: str = "resume") -> Store:
        """Create or reopen an output folder for the run described by `header`, and lock it.

        `mode` "resume" refuses a folder written with a different config or setup; "overwrite"
        first removes the previous run's files; "extend" accepts a finished run whose only
        change is a larger `personas.count`, and records the added personas as a new segment.
        """
        out = Path(out_dir)
        writable_folder(out)
        lock = lock_folder(out)
        try:
            store = cls(out, opened_manifest(out, header, mode))
            store.lock = lock
            with held():
                store._write_manifest()
        except BaseException:
            os.close(lock)
            raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's lock."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

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
        with held():
            write_checked(self.out_dir / name, data)
            failpoints.reach("written", index)
            entry = self._record(index, name, len(records), hashlib.sha256(data).hexdigest(), stats)
        failpoints.reach("committed", index)
        return entry

    def _record(self, index: int, name: str, rows: int, sha: str, stats: dict) -> dict[str, Any]:
        """List a written shard in the manifest and write the manifest; returns its entry."""
        entry = {
            "index": index,
            "file": name,
            "rows": rows,
            "sha256": sha,
            "stats": stats,
        }
        shards = [s for s in self.manifest["shards"] if s["index"] != index] + [entry]
        self.manifest["shards"] = sorted(shards, key=lambda s: s["index"])
        self._write_manifest()
        return entry

    def finish(self, totals: dict[str, Any]) -> None:
        """Mark the run complete with its totals."""
        failpoints.reach("finish")
        self.manifest["totals"] = totals
        self.manifest["status"] = "complete"
        with held():
            self._write_manifest()

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2, sort_keys=False) + "\n"
        write_checked(self.out_dir / MANIFEST_NAME, text.encode())


def write_checked(path: Path, data: bytes) -> None:
    """`write_atomic`, a full disk or a lost permission as one line."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise SaoError(f"cannot write {path}: {exc.strerror or exc}") from None


def writable_folder(out: Path) -> None:
    """Create `out` if needed and prove a file can be written in it (then removed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".sao-write-test."):
            pass  # removed on close; a unique name, so two runs never race on it
    except OSError as exc:
        raise SaoError(f"output folder {out} is not writable: {exc.strerror or exc}") from None


def lock_folder(out: Path, command: str = "sao generate") -> int:
    """An exclusive flock on the folder itself, so two runs never write one folder at once."""
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SaoError(
            f"another {command} is writing to {out}; wait for it to end or use another --out"
        ) from None
    return fd


def opened_manifest(out: Path, header: dict[str, Any], mode: str) -> dict[str, Any]:
    """The manifest a run continues with: the previous one checked against `header`, or new."""
    if mode == "overwrite":
        with held():
            remove_run(out)
        dropped_on_resume.add("--overwrite")  # the old run is gone: a resume must not remove ours
    remove_temporaries(out)
    count = header["config"]["personas"]["count"]
    old = previous_manifest(out)
    if old is None:
        if mode == "extend":
            raise SaoError(f"--extend needs a finished run in {out}, which has none")
        stray = sorted(p.name for p in out.glob(SHARD_GLOB))
        if stray:
            raise SaoError(
                f"{out} has shards ({stray[0]}, ...) but no manifest; "
                "use --overwrite or a new --out folder"
            )
        manifest = {**header, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        manifest.update(shards=[], segments=[count])
    else:
        segments = old.get("segments") or [old["config"]["personas"]["count"]]
        if old.get("seeding") != header.get("seeding"):
            scheme = old.get("seeding") or OLD_SEEDING
            raise SaoError(
                f"{out} holds a run written with another seed scheme ({scheme}), which this "
                "version cannot continue: use --overwrite to replace it, or another --out folder"
            )
        if old.get("schema_version") != SCHEMA_VERSION:
            raise SaoError(
                f"{out} holds records of schema version {old.get('schema_version')}, this "
                f"version writes {SCHEMA_VERSION} and cannot add to them: use --overwrite to "
                "replace the run, or another --out folder"
            )
        if old.get("config_hash") != header["config_hash"]:
            keys = diff_keys(old["config"], header["config"]) or ["config"]
            if mode != "extend":
                hint = " (--extend adds them)" if keys == ["personas.count"] else ""
                raise SaoError(
                    f"{out} holds a run with a different config ({', '.join(keys)} differ"
                    f"{hint}); use --overwrite to replace it, or another --out folder"
                )
            segments = [*segments, extension(old, keys, count, out)]
        drift = setup_drift(old, header)
        if drift:
            raise SaoError(
                f"{out} holds a run made with a different {', '.join(drift)}; "
                "use --overwrite to replace it, or another --out folder"
            )
        manifest = {**old, **header, "shards": old["shards"], "segments": segments}
        manifest["created"] = old.get("created", manifest.get("created"))
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["status"] = "running"
    manifest.pop("totals", None)
    return manifest


def previous_manifest(out: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when there is none; SaoError when it is not a sao manifest."""
    path = out / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SaoError(
            f"{path} is unreadable ({exc}); use --overwrite or a new --out folder"
        ) from None
    if not well_formed(old):
        raise SaoError(
            f"{path} is not a sao manifest this version can resume; "
            "use --overwrite or a new --out folder"
        )
    return old


def well_formed(old: Any) -> bool:
    """The fields resume reads are there, with the right types."""
    try:
        count = old["config"]["personas"]["count"]
        shards_ok = all(
            isinstance(e["index"], int)
            and isinstance(e["file"], str)
            and isinstance(e["sha256"], str)
            and isinstance(e["rows"], int)
            for e in old["shards"]
        )
        segments = old.get("segments", [count])
        return (
            isinstance(count, int)
            and shards_ok
            and isinstance(segments, list)
            and all(isinstance(n, int) for n in segments)
            and all(isinstance(old[key], dict) for key in ("engine", "model", "templates"))
        )
    except (KeyError, TypeError):
        return False


def setup(manifest: dict[str, Any]) -> dict[str, Any]:
    """What besides the config decides the records: engine, model identity, templates, persona
    pool, seeds and the versions of the packages that compute them."""
    personas = manifest.get("personas") or {}
    return {
        "engine": manifest["engine"].get("name"),
        "judge engine": manifest["engine"].get("judge"),
        # `auto` resolves per machine: a resume on one without native bf16 would mix dtypes
        "dtype": [manifest["engine"].get("dtype"), manifest["engine"].get("judge_dtype")],
        **model_setup(manifest["model"], "model"),
        **model_setup(manifest.get("judge_model") or {}, "judge model"),
        "templates": manifest["templates"],
        "persona pool": personas.get("pool_sha256"),
        "persona sampling": personas.get("sampling"),
        "packages": manifest.get("packages"),
    }


def model_setup(model: dict[str, Any], role: str) -> dict[str, Any]:
    """What identifies one model of the run (`role`: "model" or "judge model"): a folder by
    its digest (it may move), a hub id by its path and revision, a served model by its name and
    what the server says it serves."""
    source = model.get("source")
    return {
        role: {"server": model.get("name"), "hub": model.get("path")}.get(source, source),
        f"{role} weights": model.get("digest"),
        f"{role} revision": model.get("revision"),
        f"served {role}": [model.get("served"), model.get("root")],
    }


def setup_drift(old: dict[str, Any], header: dict[str, Any]) -> list[str]:
    """The parts of `setup` in which a folder's run differs from the one starting (packages
    named with their versions)."""
    before, now = setup(old), setup(header)
    drift = [key for key in now if key != "packages" and before[key] != now[key]]
    moved = changed_packages(before["packages"] or {}, now["packages"] or {})
    if moved:
        drift.append(f"package versions ({', '.join(moved)})")
    return drift


def extension(old: dict[str, Any], keys: list[str], count: int, out: Path) -> int:
    """Personas an `--extend` adds to the finished run `old`; refuses any other change."""
    others = [key for key in keys if key != "personas.count"]
    if others:
        raise SaoError(
            f"--extend only adds personas, but {', '.join(others)} differ from the run in {out}"
        )
    before = old["config"]["personas"]["count"]
    if count <= before:
        raise SaoError(f"--extend needs more than the {before} personas already in {out}")
    if old.get("status") != "complete":
        raise SaoError(
            f"--extend adds to a finished run; {out} is unfinished: rerun its own command first"
        )
    return count - before


def remove_run(out: Path) -> int:
    """Delete a previous run's manifest, shards and, when there was a run, its report files;
    returns the shards removed. The manifest goes first: a half-removed run is never resumed."""
    manifest = out / MANIFEST_NAME
    shards = list(out.glob(SHARD_GLOB))
    if not manifest.exists() and not shards:
        return 0
    try:
        manifest.unlink(missing_ok=True)
        for path in [*shards, *(out / name for name in REPORT_FILES)]:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise SaoError(f"cannot remove the previous run in {out}: {exc.strerror or exc}") from None
    return len(shards)


def remove_temporaries(out: Path) -> None:
    """Delete the temporary files a killed write left behind (never visible to readers)."""
    for path in out.glob(".*.tmp"):
        if path.name.startswith((".shard-", f".{MANIFEST_NAME}.")):
            path.unlink(missing_ok=True)


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


def changed_packages(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """'name a → b' for every package whose version differs (or appeared, or went)."""
    return [
        f"{name} {before.get(name, 'none')} → {now.get(name, 'none')}"
        for name in sorted(set(before) | set(now))
        if before.get(name) != now.get(name)
    ]
