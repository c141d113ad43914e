"""Personas: who the model pretends to be when it writes a user prompt.

Three sources, all returning `Persona` objects in source order with duplicates dropped:

* the bundled library (`load_library`, source "bundled"): about six thousand personas built by
  personas/build_library.py from attribute tables written for this project;
* a JSON Lines file in the Persona Hub layout (`load_jsonl`): one object per line with a
  "persona" string;
* a Hugging Face dataset (`load_hf_column`, source "hf:<name_or_path>[:<column>[:<split>]]"),
  either a folder written by `Dataset.save_to_disk` or anything `datasets.load_dataset` opens.

Every problem a user can fix is raised as a one-line `SaoError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sao.config import RunConfig
from sao.errors import SaoError

LIBRARY_FILE = "library.jsonl"
BUNDLED = "bundled"
HF_PREFIX = "hf:"
JSONL_SUFFIXES = (".jsonl", ".json")
# A persona is a short description; anything longer is a broken file, not a person.
MAX_PERSONA_CHARS = 20_000
# Files that mark a folder written by Dataset.save_to_disk / DatasetDict.save_to_disk.
_SAVED_DATASET_MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")


@dataclasses.dataclass(frozen=True)
class Persona:
    """One persona: a short description of a person, plus where it came from."""

    id: str  # library id, "<file stem>:<line number>" (JSONL) or "<dataset>:<row>" (HF)
    text: str
    # Table keys for bundled personas (occupation, place, ...); empty for external sources.
    attributes: dict[str, str] = dataclasses.field(default_factory=dict, hash=False, compare=False)


class PersonaPool(list[Persona]):
    """The distinct personas of one source, remembering the source and the duplicates dropped."""

    def __init__(self, personas: Iterable[Persona], source: str, duplicates: int = 0) -> None:
        super().__init__(personas)
        self.source = source
        self.duplicates = duplicates


# --------------------------------------------------------------------------- bundled library


def library_dir() -> Path:
    """The bundled personas/ folder: sao/_data/personas in a wheel, else <repo>/personas."""
    package_dir = Path(__file__).resolve().parent
    installed = package_dir / "_data" / "personas"
    if installed.is_dir():
        return installed
    return package_dir.parent / "personas"


def load_library() -> list[Persona]:
    """The bundled persona library (personas/library.jsonl), in library order."""
    path = library_dir() / LIBRARY_FILE
    personas: list[Persona] = []
    for lineno, record in _json_objects(path):
        persona_id = record.get("id")
        if not isinstance(persona_id, str) or not persona_id:
            raise SaoError(f"{path} line {lineno}: missing or non-string 'id' field")
        text = _persona_text(record, "persona", path, lineno)
        attributes = record.get("attributes", {})
        if not isinstance(attributes, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in attributes.items()
        ):
            raise SaoError(f"{path} line {lineno}: 'attributes' must map names to strings")
        personas.append(Persona(persona_id, text, dict(attributes)))
    return _pool(personas, "the bundled persona library")


# --------------------------------------------------------------------------- JSON Lines


def load_jsonl(path: str | Path, field: str = "persona") -> list[Persona]:
    """Personas from a JSON Lines file with one object per line holding a `field` string.

    Blank lines are skipped; a persona text seen before is dropped (the first one is kept).
    Ids are "<file stem>:<line number>", counting lines from 1.
    """
    file = Path(path)
    personas = [
        Persona(f"{file.stem}:{lineno}", _persona_text(record, field, file, lineno))
        for lineno, record in _json_objects(file)
    ]
    if not personas:
        raise SaoError(
            f"persona file {file} is empty: no personas (expected one JSON object per line "
            f"with a {field!r} string)"
        )
    return _pool(personas, str(file))


def _json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line; SaoError on anything else."""
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SaoError(f"{path} line {lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            hint = " (the file must be JSON Lines: one object per line)" if lineno == 1 else ""
            raise SaoError(
                f"{path} line {lineno}: expected a JSON object, got {_json_type(value)}{hint}"
            )
        yield lineno, value


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decode a file line by line so that bad UTF-8 can be pinned to a line number."""
    if not path.exists():
        raise SaoError(f"persona file not found: {path}")
    if not path.is_file():
        raise SaoError(f"persona source is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SaoError(f"cannot read persona file {path}: {exc.strerror or exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SaoError(f"{path} is UTF-16 text; save it as UTF-8")
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = raw[exc.start : exc.start + 1].hex()
            raise SaoError(
                f"{path} line {lineno}: not valid UTF-8 text (byte 0x{byte} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None


def _persona_text(record: dict[str, Any], field: str, path: Path, lineno: int) -> str:
    if field not in record:
        keys = ", ".join(repr(key) for key in list(record)[:8]) or "none"
        raise SaoError(f"{path} line {lineno}: missing the {field!r} field (keys found: {keys})")
    value = record[field]
    if not isinstance(value, str):
        raise SaoError(
            f"{path} line {lineno}: the {field!r} field must be a string, got {_json_type(value)}"
        )
    text = value.strip()
    if not text:
        raise SaoError(f"{path} line {lineno}: the {field!r} field is empty")
    _check_length(text, f"{path} line {lineno}: the {field!r} field")
    return text


def _check_length(text: str, where: str) -> None:
    """SaoError when a persona is longer than `MAX_PERSONA_CHARS`."""
    if len(text) > MAX_PERSONA_CHARS:
        raise SaoError(
            f"{where} is {len(text):,} characters long; a persona may have at most "
            f"{MAX_PERSONA_CHARS:,}"
        )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- Hugging Face


def load_hf_column(
    name_or_path: str, column: str = "persona", split: str = "train"
) -> list[Persona]:
    """Personas from one text column of a Hugging Face dataset.

    A folder written by `save_to_disk` is opened with `datasets.load_from_disk` (for a saved
    DatasetDict, `split` picks the part); anything else goes to `datasets.load_dataset`.
    Empty cells are skipped, repeated texts dropped. Ids are "<name_or_path>:<row>" with
    0-based row numbers.
    """
    dataset = _open_dataset(name_or_path, split)
    columns = list(dataset.column_names)
    if column not in columns:
        raise SaoError(
            f"dataset {name_or_path!r} has no column {column!r}; "
            f"available columns: {', '.join(columns) or 'none'}"
        )
    feature = dataset.features.get(column)
    dtype = getattr(feature, "dtype", None)
    if dtype not in ("string", "large_string"):
        raise SaoError(
            f"column {column!r} of dataset {name_or_path!r} holds {dtype or feature}, not text"
        )
    personas = [
        Persona(f"{name_or_path}:{row}", value.strip())
        for row, value in enumerate(dataset[column])
        if isinstance(value, str) and value.strip()
    ]
    for persona in personas:
        _check_length(persona.text, f"dataset {name_or_path!r} row {persona.id.rsplit(':', 1)[1]}")
    return _pool(personas, f"dataset {name_or_path!r} column {column!r}")


def _open_dataset(name_or_path: str, split: str) -> Any:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise SaoError("reading Hugging Face datasets needs the 'datasets' package") from None
    path = Path(name_or_path).expanduser()
    looks_local = (
        name_or_path.startswith(("/", ".", "~"))
        or name_or_path.count("/") > 1
        or "\\" in name_or_path
    )
    if path.is_dir() and any((path / marker).is_file() for marker in _SAVED_DATASET_MARKERS):
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # corrupt or incompatible folder
            raise SaoError(f"cannot open saved dataset {path}: {_one_line(exc)}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise SaoError(
                    f"saved dataset {path} has no split {split!r}; "
                    f"available splits: {', '.join(loaded)}"
                )
            return loaded[split]
        return loaded
    if looks_local and not path.exists():
        raise SaoError(f"dataset folder not found: {name_or_path}")
    if path.is_file():
        raise SaoError(
            f"{name_or_path} is a file, not a dataset; use a .jsonl path for JSON Lines files"
        )
    try:
        return datasets.load_dataset(name_or_path, split=split)
    except Exception as exc:  # not found, no access, bad split, offline, ...
        raise SaoError(
            f"cannot load Hugging Face dataset {name_or_path!r} (split {split!r}): {_one_line(exc)}"
        ) from None


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --------------------------------------------------------------------------- choosing a source


def load_personas(source: str | None) -> list[Persona]:
    """Load personas from a source string.

    None or "bundled": the bundled library; a path ending in .jsonl or .json: `load_jsonl`;
    "hf:<name_or_path>[:<column>[:<split>]]": `load_hf_column`.
    """
    if source is None or source.strip() == BUNDLED:
        return load_library()
    source = source.strip()
    if source.startswith(HF_PREFIX):
        parts = source[len(HF_PREFIX) :].split(":")
        if not parts[0] or len(parts) > 3:
            raise SaoError(
                f"bad persona source {source!r}: expected hf:<name_or_path>[:<column>[:<split>]]"
            )
        column = parts[1] if len(parts) > 1 and parts[1] else "persona"
        split = parts[2] if len(parts) > 2 and parts[2] else "train"
        return load_hf_column(parts[0], column=column, split=split)
    if source.lower().endswith(JSONL_SUFFIXES):
        return load_jsonl(source)
    raise SaoError(
        f"unknown persona source {source!r}: use 'bundled', a .jsonl file, "
        "or hf:<name_or_path>[:<column>[:<split>]]"
    )


SAMPLING = "prefix-of-seeded-shuffle/1"  # recorded in the manifest; a change refuses resume


def pool_digest(personas: list[Persona]) -> str:
    """SHA-256 over the pool's ids and texts in order: a resume must sample the same pool."""
    h = hashlib.sha256()
    for persona in personas:
        h.update(persona.id.encode())
        h.update(b"\0")
        h.update(persona.text.encode())
        h.update(b"\n")
    return h.hexdigest()


def sample_personas(personas: list[Persona], n: int, seed: int) -> list[Persona]:
    """`n` distinct personas drawn without replacement; the same seed gives the same list.

    The draw is a prefix of one seeded shuffle of the source, so a larger `n` keeps the
    personas of a smaller one in the same order (`sao generate --extend` relies on it).
    """
    if n < 0:
        raise SaoError(f"cannot sample a negative number of personas ({n})")
    if n > len(personas):
        raise SaoError(f"asked for {n} personas but {_has_only(personas)}")
    order = list(range(len(personas)))
    random.Random(seed).shuffle(order)
    return [personas[i] for i in order[:n]]


# --------------------------------------------------------------------------- helpers


def _pool(personas: Iterable[Persona], source: str) -> PersonaPool:
    """Drop personas whose text was seen before (the first is kept, in source order)."""
    seen: set[str] = set()
    unique: list[Persona] = []
    total = 0
    for persona in personas:
        total += 1
        if persona.text not in seen:
            seen.add(persona.text)
            unique.append(persona)
    if not unique:
        raise SaoError(f"{source}: no personas found (the source is empty)")
    return PersonaPool(unique, source, duplicates=total - len(unique))


def _has_only(personas: list[Persona]) -> str:
    """'<source> has only N ...; <what to do>' for a pool smaller than a request."""
    source = getattr(personas, "source", "the persona source")
    duplicates = getattr(personas, "duplicates", 0)
    if duplicates:
        dropped = f"{duplicates} duplicate{'s' if duplicates != 1 else ''} dropped"
        have = f"{source} has only {len(personas)} distinct ones ({dropped})"
    else:
        have = f"{source} has only {len(personas)}"
    return f"{have}; lower the count or use a larger source"


def choose_personas(cfg: RunConfig) -> tuple[list[Persona], dict[str, Any]]:
    """The run's personas, and the manifest's description of where they came from.

    With `personas.enabled: false` (the no-persona ablation) every slot is an empty persona,
    so each prompt comes from the same template with no one to role-play.
    """
    count, skip = cfg.personas.count, cfg.personas.skip
    if not cfg.personas.enabled:
        slots = [Persona(f"none:{i:06d}", "") for i in range(skip, skip + count)]
        return slots, {"source": None, "pool": 0, "sampled": count, "pool_sha256": None}
    pool = load_personas(cfg.personas.source)
    about = {
        "source": cfg.personas.source,
        "pool": len(pool),
        "sampled": count,
        "pool_sha256": pool_digest(pool),
        "sampling": SAMPLING,
    }
    if skip:
        about["skipped"] = skip  # the draw's first `skip` went elsewhere (an earlier round)
    return sample_personas(pool, skip + count, cfg.seed)[skip:], about
