"""Tests for the bundled persona library, its build script and the persona loaders."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sao.errors import SaoError
from sao.personas import (
    MAX_PERSONA_CHARS,
    Persona,
    library_dir,
    load_hf_column,
    load_jsonl,
    load_library,
    load_personas,
    sample_personas,
)

REPO = Path(__file__).resolve().parent.parent
ATTRIBUTE_KEYS = {
    "occupation",
    "life_stage",
    "place",
    "interest",
    "expertise",
    "temperament",
    "goal",
}


@pytest.fixture(scope="module")
def build_script() -> ModuleType:
    path = REPO / "personas" / "build_library.py"
    spec = importlib.util.spec_from_file_location("sao_build_library", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


@pytest.fixture(scope="module")
def library() -> list[Persona]:
    return load_library()


# --------------------------------------------------------------------------- bundled library


def test_library_dir_is_the_repo_folder_in_a_checkout() -> None:
    assert (library_dir() / "library.jsonl").is_file()


def test_library_size_and_distinct_texts(library: list[Persona]) -> None:
    texts = [persona.text for persona in library]
    assert len(library) >= 5000
    assert len(set(texts)) == len(texts)
    assert len({persona.id for persona in library}) == len(library)


def test_library_personas_are_one_to_three_sentences(
    library: list[Persona], build_script: ModuleType
) -> None:
    for persona in library:
        assert len(persona.text) >= 60, persona
        assert 1 <= build_script.count_sentences(persona.text) <= 3, persona
        assert persona.text[0].isupper() and persona.text.endswith("."), persona
        assert "{" not in persona.text and "  " not in persona.text, persona


def test_library_attributes_are_complete(library: list[Persona], build_script: ModuleType) -> None:
    for persona in library:
        assert set(persona.attributes) >= ATTRIBUTE_KEYS, persona.id
        assert all(isinstance(v, str) and v for v in persona.attributes.values())
    # Every table entry is used, so coverage reports see the whole table.
    for key, entries in build_script.load_tables().items():
        used = {persona.attributes[key] for persona in library}
        assert used == {entry["key"] for entry in entries}, key


def test_attribute_table_sizes(build_script: ModuleType) -> None:
    tables = build_script.load_tables()
    assert len(tables["occupation"]) >= 120
    assert len(tables["life_stage"]) >= 15
    assert len(tables["place"]) >= 60
    assert len(tables["interest"]) >= 100
    assert len(tables["expertise"]) >= 15
    assert len(tables["temperament"]) >= 30
    assert len(tables["goal"]) >= 80


def test_build_is_deterministic_and_matches_committed_file(
    build_script: ModuleType, tmp_path: Path
) -> None:
    out = build_script.main(tmp_path / "library.jsonl")
    committed = REPO / "personas" / "library.jsonl"
    assert out.read_bytes() == committed.read_bytes()
    assert committed.stat().st_size < 4_500_000
    small_a = build_script.build(count=200)
    small_b = build_script.build(count=200)
    assert small_a == small_b
    assert [r["persona"] for r in small_a] == [r["persona"] for r in build_script.build(200)]


def test_grammar_helpers(build_script: ModuleType) -> None:
    article = build_script.indefinite_article
    assert article("ICU nurse") == "an"
    assert article("night-shift ICU nurse") == "a"
    assert article("HVAC technician") == "an"
    assert article("UX researcher") == "a"
    assert article("urban planner") == "an"
    assert article("university lecturer") == "a"
    assert article("used-car salesperson") == "a"
    assert article("hour-long") == "an"
    conjugate = build_script.conjugate
    assert conjugate("be", plural=False) == "is"
    assert conjugate("be", plural=True) == "are"
    assert conjugate("fix", plural=False) == "fixes"
    assert conjugate("try", plural=False) == "tries"
    assert conjugate("play", plural=False) == "plays"
    assert conjugate("keep", plural=True) == "keep"


# --------------------------------------------------------------------------- sampling


def test_sample_personas_is_seeded_and_without_replacement(library: list[Persona]) -> None:
    first = sample_personas(library, 50, seed=7)
    again = sample_personas(library, 50, seed=7)
    other = sample_personas(library, 50, seed=8)
    assert first == again
    assert first != other
    assert len({p.id for p in first}) == 50
    small = library[:5]
    assert sorted(p.id for p in sample_personas(small, 5, seed=1)) == sorted(p.id for p in small)
    assert sample_personas(small, 0, seed=1) == []


def test_a_larger_sample_keeps_the_smaller_one_as_its_prefix(library: list[Persona]) -> None:
    for small, large in [(3, 10), (20, 21), (5, 400)]:
        assert sample_personas(library, large, 3)[:small] == sample_personas(library, small, 3)


def test_sample_personas_too_many() -> None:
    with pytest.raises(SaoError, match="only 2"):
        sample_personas([Persona("a", "x"), Persona("b", "y")], 3, seed=0)


# --------------------------------------------------------------------------- JSON Lines


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_load_jsonl_good_file(tmp_path: Path) -> None:
    lines = [
        json.dumps({"persona": "A beekeeper in Crete who hates mornings."}),
        "",
        json.dumps({"persona": "  A retired welder in Ohio.  ", "extra": 1}),
        json.dumps({"persona": "A beekeeper in Crete who hates mornings."}),
        "   ",
        json.dumps({"persona": "Ein Bäcker aus Köln."}, ensure_ascii=False),
    ]
    path = _write(tmp_path / "hub.jsonl", "\n".join(lines) + "\n")
    personas = load_jsonl(path)
    assert [p.text for p in personas] == [
        "A beekeeper in Crete who hates mornings.",
        "A retired welder in Ohio.",
        "Ein Bäcker aus Köln.",
    ]
    assert [p.id for p in personas] == ["hub:1", "hub:3", "hub:6"]
    assert all(p.attributes == {} for p in personas)
    assert load_personas(str(path)) == personas


def test_load_jsonl_other_field_and_crlf(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.json", b'{"text": "A tailor."}\r\n{"text": "A pilot."}\r\n')
    assert [p.text for p in load_jsonl(path, field="text")] == ["A tailor.", "A pilot."]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ('{"persona": "ok"}\n{"persona": "unterminated\n', 2, "not valid JSON"),
        ('{"persona": "ok"}\n\n["a list"]\n', 3, "expected a JSON object"),
        ('"just a string"\n', 1, "expected a JSON object"),
        ('{"persona": "ok"}\n{"name": "Ann"}\n', 2, "missing the 'persona' field"),
        ('{"persona": 42}\n', 1, "must be a string"),
        ('{"persona": null}\n', 1, "must be a string"),
        ('{"persona": "ok"}\n{"persona": "ok 2"}\n{"persona": "   "}\n', 3, "is empty"),
    ],
)
def test_load_jsonl_malformed(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = _write(tmp_path / "bad.jsonl", content)
    with pytest.raises(SaoError) as info:
        load_jsonl(path)
    message = str(info.value)
    assert f"{path} line {line}:" in message
    assert fragment in message
    assert "\n" not in message


def test_load_jsonl_bad_utf8_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "latin1.jsonl", b'{"persona": "ok"}\n{"persona": "caf\xe9"}\n')
    with pytest.raises(SaoError, match=r"latin1\.jsonl line 2: not valid UTF-8"):
        load_jsonl(path)


def test_load_jsonl_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(SaoError, match="not found"):
        load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(SaoError, match="no personas"):
        load_jsonl(_write(tmp_path / "empty.jsonl", ""))
    with pytest.raises(SaoError, match="no personas"):
        load_jsonl(_write(tmp_path / "blank.jsonl", "\n  \n\n"))
    with pytest.raises(SaoError, match="not a file"):
        load_jsonl(tmp_path)


# --------------------------------------------------------------------------- Hugging Face


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path_factory.mktemp("hf") / "personas_ds"
    datasets.Dataset.from_dict(
        {
            "persona": ["A glassblower.", "", "A ferry captain.", "A glassblower.", None],
            "description": ["d1", "d2", "d3", "d4", "d5"],
            "score": [1, 2, 3, 4, 5],
        }
    ).save_to_disk(str(folder))
    return folder


def test_load_hf_column_from_saved_dataset(saved_dataset: Path) -> None:
    personas = load_hf_column(str(saved_dataset))
    assert [p.text for p in personas] == ["A glassblower.", "A ferry captain."]
    assert [p.id for p in personas] == [f"{saved_dataset}:0", f"{saved_dataset}:2"]
    other = load_hf_column(str(saved_dataset), column="description")
    assert [p.text for p in other] == ["d1", "d2", "d3", "d4", "d5"]
    assert load_personas(f"hf:{saved_dataset}") == personas
    assert load_personas(f"hf:{saved_dataset}:description:train") == other


def test_load_hf_column_errors(saved_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(SaoError, match=r"no column 'text'.*persona, description, score"):
        load_hf_column(str(saved_dataset), column="text")
    with pytest.raises(SaoError, match="not text"):
        load_hf_column(str(saved_dataset), column="score")
    with pytest.raises(SaoError, match="not found"):
        load_hf_column(str(tmp_path / "missing_ds"))


def test_load_hf_column_dataset_dict_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "dd"
    datasets.DatasetDict(
        {"test": datasets.Dataset.from_dict({"persona": ["A judge.", "A jockey."]})}
    ).save_to_disk(str(folder))
    assert [p.text for p in load_hf_column(str(folder), split="test")] == ["A judge.", "A jockey."]
    with pytest.raises(SaoError, match=r"no split 'train'.*test"):
        load_hf_column(str(folder))


# --------------------------------------------------------------------------- load_personas


def test_load_personas_sources(library: list[Persona]) -> None:
    assert load_personas(None) == library
    assert load_personas("bundled") == library
    with pytest.raises(SaoError, match="unknown persona source"):
        load_personas("personas.csv")
    with pytest.raises(SaoError, match="bad persona source"):
        load_personas("hf:")
    with pytest.raises(SaoError, match="bad persona source"):
        load_personas("hf:a:b:c:d")


def test_a_persona_longer_than_the_limit_names_its_line(tmp_path: Path) -> None:
    lines = [{"persona": "x" * MAX_PERSONA_CHARS}, {"persona": "y" * (MAX_PERSONA_CHARS + 1)}]
    path = _write(tmp_path / "long.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(SaoError, match=r"long\.jsonl line 2: .* characters long"):
        load_jsonl(path)


def test_too_few_distinct_personas_says_duplicates_were_dropped(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.jsonl", '{"persona": "A"}\n{"persona": "A"}\n{"persona": "B"}\n')
    pool = load_jsonl(path)
    assert [p.text for p in pool] == ["A", "B"]
    assert sample_personas(pool, 2, seed=0)  # duplicates alone are dropped silently
    with pytest.raises(SaoError, match=r"only 2 distinct ones \(1 duplicate dropped\)"):
        sample_personas(pool, 3, seed=0)
