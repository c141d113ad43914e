"""The run's engine: which model it serves and loading it, refusing one the judge cannot use."""

from __future__ import annotations

from rich.console import Console

from sao.config import EngineConfig, RunConfig
from sao.engines import Engine, make_engine, resolve_engine_name
from sao.engines.guard import GuardedEngine, failures_as_one_line
from sao.errors import SaoError
from sao.models import EMBEDDED_ALIAS, ResolvedModel, resolve_model
from sao.preflight import check_verdict_first


def load_engine(
    cfg: RunConfig, engine_cfg: EngineConfig, model: ResolvedModel, console: Console, judges: bool
) -> Engine:
    """Load one of the run's engines; the one that `judges` must suit the judge mode."""
    reward = judges and cfg.judge.mode == "reward-model"
    name = "hf-reward" if reward else resolve_engine_name(engine_cfg.name)
    with console.status(f"loading {model.name} on engine {name}"):
        engine = make_engine(engine_cfg, model.path, cfg.seed, model.revision, reward=reward)
    if judges and cfg.judge.mode == "pairwise-logprob" and not engine.supports_logprobs:
        engine.close()
        raise SaoError(
            f"engine {engine.name} returns no log-probabilities: "
            "set judge.mode to pairwise-text or rubric"
        )
    if judges:
        try:
            with failures_as_one_line("the judge's reasoning check"):
                check_verdict_first(GuardedEngine(engine), cfg, model.name)
        except BaseException:
            engine.close()
            raise
    return engine


def unloaded_model(name: str, engine_name: str) -> ResolvedModel:
    """The model `name` as the engine will know it, with nothing converted or fetched yet."""
    return served_model(name) if engine_name == "openai" else resolve_model(name, prepare=False)


def served_model(name: str) -> ResolvedModel:
    """The model of an `openai` run: a served model's name, or "" (the embedded alias, the
    default) for whichever single model the server holds."""
    path = "" if name.lower() == EMBEDDED_ALIAS else name
    return ResolvedModel(name, path, "server")
