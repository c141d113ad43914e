"""What a model folder holds, as one digest: the weights, config and tokenizer files hashed.

Resume compares this digest, not the folder's path, so a checkpoint rewritten in place (as
training rounds do) is never taken for the model a run started with. Hashing 140 GB of a 70B
model takes minutes, so each folder's digest is cached under `$SAO_CACHE/digests.json`, keyed by
the folder and every file's (name, size, mtime): an unchanged folder is looked up, not reread.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from sao.errors import SaoError
from sao.hashing import sha256_file
from sao.models import cache_dir

# files that do not change what the model computes
SKIPPED = {"README.md", "LICENSE", "LICENSE.txt", "NOTICE", ".gitattributes"}
# folders no engine loads the model from: a trainer's checkpoints and logs beside the model it
# saved, Meta's consolidated weights (`original/`), other runtimes' exports
SKIPPED_DIRS = {"original", "onnx", "openvino", "coreml", "runs", "logs"}


def skipped_dir(name: str) -> bool:
    """True for a folder whose files are no part of the model (`checkpoint-500/`, `runs/`)."""
    return name.startswith(".") or name in SKIPPED_DIRS or name.startswith("checkpoint-")


CACHE_FILE = "digests.json"


def model_files(folder: Path) -> list[Path]:
    """The files that make up the model, recursively, in a stable order."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not skipped_dir(d))
        for name in sorted(files):
            if name not in SKIPPED and not name.startswith("."):
                found.append(Path(root) / name)
    return found


def fingerprint(folder: Path, files: list[Path]) -> list[list]:
    """(relative name, size, mtime in ns) of every file: what a change in place must alter."""
    rows = []
    for path in files:
        st = path.stat()  # follows links: a hub snapshot's files are links into its blobs
        rows.append([str(path.relative_to(folder)), st.st_size, st.st_mtime_ns])
    return rows


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over every model file's name and content; cached while the files are unchanged."""
    folder = Path(folder).resolve()
    try:
        files = model_files(folder)
        stamp = fingerprint(folder, files)
    except OSError as exc:
        raise SaoError(f"cannot read model folder {folder}: {exc.strerror or exc}") from None
    cache = _read_cache()
    entry = cache.get(str(folder))
    if entry and entry.get("files") == stamp:
        return entry["sha256"]
    h = hashlib.sha256()
    try:
        for path, (name, _, _) in zip(files, stamp, strict=True):
            h.update(f"{name}\0{sha256_file(path)}\n".encode())
    except OSError as exc:
        raise SaoError(f"cannot read model folder {folder}: {exc.strerror or exc}") from None
    digest = h.hexdigest()
    cache = {path: entry for path, entry in cache.items() if Path(path).is_dir()}  # prune gone
    cache[str(folder)] = {"files": stamp, "sha256": digest}
    _write_cache(cache)
    return digest


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: dict) -> None:
    """Best effort: a cache that cannot be written only costs a rehash next time."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".digests.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cache, f)
        os.replace(tmp, path)
    except OSError:
        return
