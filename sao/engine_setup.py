"""The run's engine: which model it serves and loading it, refusing one the judge cannot use."""

from __future__ import annotations

from rich.console import Console

from sao.config import RunConfig
from sao.engines import Engine, make_engine, resolve_engine_name
from sao.errors import SaoError
from sao.models import EMBEDDED_ALIAS, ResolvedModel


def load_engine(cfg: RunConfig, model: ResolvedModel, console: Console) -> Engine:
    """Load the configured engine, refusing one the judge mode cannot use."""
    name = resolve_engine_name(cfg.engine.name)
    with console.status(f"loading {model.name} on engine {name}"):
        engine = make_engine(cfg.engine, model.path, cfg.seed, model.revision)
    if cfg.judge.mode == "pairwise-logprob" and not engine.supports_logprobs:
        engine.close()
        raise SaoError(
            f"engine {engine.name} returns no log-probabilities: "
            "set judge.mode to pairwise-text or rubric"
        )
    return engine


def served_model(name: str) -> ResolvedModel:
    """The model of an `openai` run: a served model's name, or "" (the embedded alias, the
    default) for whichever single model the server holds."""
    path = "" if name.lower() == EMBEDDED_ALIAS else name
    return ResolvedModel(name, path, "server")
