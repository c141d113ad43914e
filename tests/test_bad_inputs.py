"""The bad-input corpus: every folder in tests/bad_inputs/ is one mistake a user can make.

Each case folder holds `case.yaml` (`args`: the `sao` arguments, `error`: text the one error
line must contain, optional `setup`: named steps for inputs a static file cannot be, optional
`about`) and the input files it names. The case runs in a copy of its folder and must end in
exactly one `error: ...` line on stderr, a non-zero exit, no traceback, and the folder exactly
as it was: a bad input fails before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sao.cli import app
from sao.config import load_config
from sao.models import EMBEDDED_ALIAS, cache_dir, embedded_gguf, resolve_model
from sao.records import SCHEMA_VERSION
from sao.seeds import SEED_SCHEME

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.yaml").is_file())
CASE_KEYS = {"about", "args", "error", "setup"}
MIN_CASES = 25
HUGE_PERSONA_CHARS = 1 << 20
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"
TOKENIZER_FILES = ("config.json", "generation_config.json", "tokenizer.json")


# --------------------------------------------------------------------------- setup steps

Setup = Callable[[Path], contextlib.AbstractContextManager[None]]
SETUPS: dict[str, Setup] = {}


def setup_step(fn: Callable[[Path], Iterator[None]]) -> Callable[[Path], Iterator[None]]:
    """Register a generator as the named setup step `fn.__name__`."""
    SETUPS[fn.__name__] = contextlib.contextmanager(fn)
    return fn


@setup_step
def chat_model(sandbox: Path) -> Iterator[None]:
    """./model: a stand-in instruct model folder (config and chat template, no weights)."""
    folder = sandbox / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    yield


@setup_step
def model_without_chat_template(sandbox: Path) -> Iterator[None]:
    """./model: the embedded model's config and tokenizer with the chat template left out."""
    folder = sandbox / "model"
    folder.mkdir()
    source = _converted_embedded_model()
    for name in TOKENIZER_FILES:
        if source is not None and (source / name).is_file():
            shutil.copyfile(source / name, folder / name)
    tokenizer_config: dict = {"tokenizer_class": "GPT2Tokenizer"}
    if source is not None and (source / "tokenizer_config.json").is_file():
        tokenizer_config = json.loads((source / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    if not (folder / "config.json").is_file():
        (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    yield


def _converted_embedded_model() -> Path | None:
    """The embedded model's converted folder, when this machine has it (never converts)."""
    try:
        embedded_gguf()
    except Exception:
        return None
    folder = Path(resolve_model(EMBEDDED_ALIAS, prepare=False).path)
    return folder if folder.is_relative_to(cache_dir()) and folder.is_dir() else None


@setup_step
def huge_persona(sandbox: Path) -> Iterator[None]:
    """personas.jsonl: a good line, then a 1 MiB persona on line 2."""
    lines = [{"persona": "A baker."}, {"persona": "x" * HUGE_PERSONA_CHARS}]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (sandbox / "personas.jsonl").write_text(text)
    yield


@setup_step
def read_only_out(sandbox: Path) -> Iterator[None]:
    """./out: an empty folder nothing can be written to (a read-only mount, or mode 0555)."""
    folder = sandbox / "out"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True
        )
    except OSError:
        mounted = None
    if mounted is not None and mounted.returncode == 0:
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    if os.geteuid() == 0:
        pytest.skip("as root, only a read-only mount stops writes, and mount failed here")
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


@setup_step
def other_run(sandbox: Path) -> Iterator[None]:
    """./out/manifest.json: a finished run of the case's config with another seed."""
    cfg = load_config(sandbox / "config.yaml")
    other = cfg.model_copy(update={"seed": cfg.seed + 1})
    manifest = {
        "config": other.data_dict(),
        "config_hash": other.data_hash(),
        "status": "complete",
        "segments": [other.personas.count],
        "shards": [],
        "engine": {"name": "hf"},
        "model": {"name": "model", "path": str(sandbox / "model"), "source": "local"},
        "templates": {},
        "seeding": SEED_SCHEME,
        "schema_version": SCHEMA_VERSION,
    }
    (sandbox / "out").mkdir()
    (sandbox / "out" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    yield


# --------------------------------------------------------------------------- the runner


def load_case(name: str) -> dict:
    """A case's case.yaml, checked for the keys the runner knows."""
    spec = yaml.safe_load((CORPUS / name / "case.yaml").read_text(encoding="utf-8"))
    assert isinstance(spec, dict) and set(spec) <= CASE_KEYS, f"{name}: bad case.yaml"
    assert isinstance(spec["args"], list) and spec["args"], f"{name}: args must be a list"
    assert isinstance(spec["error"], str) and spec["error"], f"{name}: error must be text"
    return spec


def setup_names(spec: dict) -> list[str]:
    """The case's setup steps, as a list."""
    steps = spec.get("setup") or []
    return [steps] if isinstance(steps, str) else list(steps)


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under `root` with its bytes (files), target (links) or 'dir'."""
    state: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                state[rel] = "dir"
            else:
                state[rel] = path.read_bytes()
    return state


def changes(before: dict[str, bytes | str], after: dict[str, bytes | str]) -> list[str]:
    """Paths added, removed or changed between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def test_corpus_has_enough_cases() -> None:
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} bad-input cases"
    for name in CASES:
        unknown = set(setup_names(load_case(name))) - set(SETUPS)
        assert not unknown, f"{name}: unknown setup step(s) {sorted(unknown)}"


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_case(name)
    sandbox = tmp_path / name
    shutil.copytree(CORPUS / name, sandbox)
    monkeypatch.chdir(sandbox)
    with contextlib.ExitStack() as stack:
        for step in setup_names(spec):
            stack.enter_context(SETUPS[step](sandbox))
        before = snapshot(sandbox)
        result = CliRunner().invoke(app, [str(a) for a in spec["args"]])
        after = snapshot(sandbox)

    output = result.stdout + result.stderr
    assert result.exit_code != 0, f"exit 0\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{output}"
    )
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert spec["error"] in lines[0], lines[0]
    assert not changes(before, after), f"the run changed {changes(before, after)}"


# --------------------------------------------------------------------------- good twins


@pytest.mark.parametrize("template", ["my_prompt.j2", "prompts/ask.j2", "ABSOLUTE"])
def test_a_users_template_and_model_pass_the_checks(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixed inputs of the corpus plan fine: a template in this folder, in a subfolder or
    by absolute path, and a local model folder with a chat template; nothing is written."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "prompts" / "ask.j2" if template == "ABSOLUTE" else tmp_path / template
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("You are {{ persona }}. Ask the assistant one thing.\n")
    name = str(path) if template == "ABSOLUTE" else template
    config = {"model": "./model", "personas": {"count": 2}, "prompts": {"template": name}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with SETUPS["chat_model"](tmp_path):
        before = snapshot(tmp_path)
        result = CliRunner().invoke(app, ["generate", "-c", "config.yaml", "--dry-run"])
        after = snapshot(tmp_path)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "plan: 2 personas" in result.stdout
    assert not changes(before, after)


def test_no_case_file_is_ignored_by_git():
    """A case file under an ignored name (*.gguf, out/) would be missing from a clean clone."""
    files = [str(p) for p in CORPUS.rglob("*") if p.is_file()]
    proc = subprocess.run(["git", "check-ignore", *files], capture_output=True, text=True)
    if proc.returncode == 128:
        pytest.skip("not a git checkout")
    assert proc.stdout == "", proc.stdout
