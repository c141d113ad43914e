"""Checks run before a model is loaded or a file written, so bad input fails in one line."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from sao.config import EngineConfig, JudgeConfig, RunConfig
from sao.engines import resolve_engine_name
from sao.engines.base import Engine, Message, Sampling, render_chat
from sao.engines.engine_args import check_vllm_args
from sao.errors import SaoError, describe
from sao.models import ResolvedModel, has_chat_template
from sao.personas import Persona
from sao.plan import judge_calls_per_record
from sao.stages import (
    judge,
    judge_reward,
    judge_rubric,
    opens_reasoning,
    prompts,
    responses,
    template_kwargs,
)
from sao.templates import Template
from sao.text.reasoning import split_reasoning

SAMPLE_PERSONA = "A retired teacher who grows tomatoes."
SAMPLE_PROMPT = "How do I keep tomato plants healthy?"
SAMPLE_ANSWERS = ("Water them at the roots.", "Give them sun and good soil.")
PROBE_TOKENS = 8  # what the judge writes first, greedy: enough to show a reasoning marker


def preflight(
    cfg: RunConfig,
    model: ResolvedModel,
    personas: list[Persona],
    templates: dict[str, Template],
    output: bool = True,
) -> None:
    """Raise a one-line SaoError for any input that would fail later in the run (`output`:
    the output folder too, for a run that writes one)."""
    check_templates(cfg, personas, templates)
    check_model(model)
    check_engine_args(cfg)
    if output:
        check_output(Path(cfg.output.dir))


def check_engine_args(cfg: RunConfig) -> None:
    """`vllm_args` the installed vLLM does not take fail here, before any model loads."""
    engines = [("engine.vllm_args", cfg.engine)]
    if cfg.judge.model is not None:
        engines.append(("judge.engine.vllm_args", cfg.judge_engine()))
    for where, engine in engines:
        if resolve_engine_name(engine.name) in ("vllm", "ray"):
            check_vllm_args(engine.vllm_args, where)


def check_output(out: Path) -> None:
    """The output folder exists and is writable, or can be created; writes nothing."""
    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise SaoError(f"output folder {out} is not writable: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only_fs(existing) else "permission denied"
        if existing == out:
            raise SaoError(f"output folder {out} is not writable ({reason})")
        raise SaoError(f"output folder {out} cannot be created in {existing} ({reason})")


def _read_only_fs(path: Path) -> bool:
    """True when `path` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_templates(
    cfg: RunConfig, personas: list[Persona], templates: dict[str, Template]
) -> None:
    """Build one request of each stage with sample values, through the stages' own request
    builders, so a bad template fails before the model."""
    persona = personas[0] if personas else Persona("sample", SAMPLE_PERSONA)
    _nonempty(templates["prompts"], prompts.requests([persona], templates["prompts"])[0])
    system = cfg.judge.system
    judge_template = templates["judge"]
    first, second = SAMPLE_ANSWERS
    if cfg.judge.mode == "reward-model":
        reward_turns = judge_reward.request(SAMPLE_PROMPT, first, judge_template, system)
        _nonempty(judge_template, reward_turns[-2:])
        return
    if cfg.judge.mode == "rubric":
        for answer_format in ("digit", "json"):
            turns = judge_rubric.request(
                SAMPLE_PROMPT, first, judge_template, answer_format, system
            )
            _nonempty(judge_template, turns)
        return
    labels = (cfg.judge.labels[0], cfg.judge.labels[1])
    turns = judge.request(SAMPLE_PROMPT, first, second, judge_template, labels, system)
    _nonempty(judge_template, turns)


def _nonempty(template: Template, turns: list[Message]) -> None:
    """SaoError when a template renders to nothing (every prompt would be empty)."""
    if not turns[-1]["content"]:
        raise SaoError(f"template {template.name} renders to empty text")


def check_model(model: ResolvedModel) -> None:
    """A local model folder ships a chat template (hub and served models: checked when loaded)."""
    folder = Path(model.path)
    if model.source in ("hub", "server") or not model.path or not folder.is_dir():
        return
    if not has_chat_template(folder):
        raise SaoError(
            f"model {model.name} has no chat template (no chat_template in tokenizer_config.json, "
            "no chat_template.jinja); sao needs an instruct model"
        )


def check_token_budget(
    cfg: RunConfig,
    engine: EngineConfig,
    model: ResolvedModel,
    templates: dict[str, Template],
    section: str = "engine",
) -> None:
    """The longest judge request fits the judge's context (`model` on `engine`): its template
    around a prompt of `prompts.max_chars` characters and two answers of `responses.max_tokens`
    (one, rubric), plus what the judge generates. Needs only the tokenizer, so it runs before
    the model loads. Served models (openai) are left to the server, which knows its own context.
    Answers are counted in the generator's tokens: a judge with another tokenizer may need a
    few more.
    """
    if model.source == "server" or not model.path or cfg.judge.mode == "reward-model":
        return  # a server knows its context; a reward model reads one answer, not two
    limit, where = context_limit(engine, model, section)
    if limit is None:
        return
    tokenizer = _tokenizer(model.path, model.revision)
    if tokenizer is None:
        return
    prompt = (SAMPLE_PROMPT + " ") * (cfg.prompts.max_chars // (len(SAMPLE_PROMPT) + 1) + 1)
    prompt = prompt[: cfg.prompts.max_chars]
    labels = (cfg.judge.labels[0], cfg.judge.labels[1])
    if cfg.judge.mode == "rubric":
        turns = judge_rubric.request(prompt, "", templates["judge"], "json", cfg.judge.system)
        answers = cfg.responses.max_tokens
    else:
        turns = judge.request(prompt, "", "", templates["judge"], labels, cfg.judge.system)
        answers = 2 * cfg.responses.max_tokens
    _, generated = judge_calls_per_record(cfg)  # tokens one judge call may generate
    text = render_chat(tokenizer, turns, template_kwargs(cfg.judge))
    needed = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + answers + generated
    if needed > limit:
        raise SaoError(
            f"the longest judge request needs {needed} tokens ({answers} of answers, a prompt "
            f"of {cfg.prompts.max_chars} characters) but {where} is {limit}: lower "
            f"responses.max_tokens or prompts.max_chars, or raise {section}.max_model_len"
        )


def context_limit(
    engine: EngineConfig, model: ResolvedModel, section: str = "engine"
) -> tuple[int | None, str]:
    """The context a request must fit: vLLM's `max_model_len` (set in `section`), else the
    model's positions."""
    if resolve_engine_name(engine.name) in ("vllm", "ray"):
        return engine.max_model_len, f"{section}.max_model_len"
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model.path, revision=model.revision)
    except Exception:  # an unreadable config fails, in one line, when the engine loads it
        return None, ""
    positions = getattr(config, "max_position_embeddings", None)
    return positions, "the model's context (max_position_embeddings)"


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str, revision: str | None):
    """The model's tokenizer; None when it cannot load (the engine then fails in one line)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, revision=revision)
    except Exception:
        return None


def check_verdict_first(engine: Engine, cfg: RunConfig, model_name: str) -> None:
    """A judge that reads its verdict from label log-probabilities reads the first token the
    model writes: a model that opens its reply with reasoning (or whose chat template opens it)
    is refused, so reasoning is never read as a verdict. Text and JSON verdicts are read with
    the reasoning taken out, and need no check. `engine` is guarded: its failures are one line.

    Without a tokenizer here (a server renders its own template), an empty reply cut at the
    probe's length counts as reasoning too: a server's reasoning parser takes it out of the
    text, and a template that opened the block leaves no marker at the reply's start.
    """
    jc = cfg.judge
    reads_labels = jc.mode == "pairwise-logprob" or (
        jc.mode == "rubric" and judge_rubric.scoring(jc, engine) == "logprob"
    )
    if not reads_labels:
        return
    turns = sample_judge_turns(jc)
    markers, kwargs = cfg.reasoning.markers, template_kwargs(jc)
    opened = opens_reasoning(engine, [turns], kwargs, markers)
    if not opened:
        params = Sampling(n=1, temperature=0.0, top_p=1.0, max_tokens=PROBE_TOKENS)
        ((reply,),) = engine.chat([turns], params, kwargs)
        served = getattr(engine, "tokenizer", None) is None
        silent = served and not reply.text.strip() and reply.finish_reason == "length"
        opened = silent or split_reasoning(reply.text, markers)[0] is not None
        opened = opened or (served and markers[1] in reply.text)
    if opened:
        raise SaoError(
            f"judge.mode {jc.mode} reads its verdict from the first token {model_name} writes, "
            f"but that model opens its reply with reasoning ({markers[0]}): set "
            "judge.chat_template_kwargs (e.g. enable_thinking: false) or judge.mode pairwise-text"
        )


def sample_judge_turns(jc: JudgeConfig) -> list[Message]:
    """One judge conversation of the configured mode, built from the sample values by the
    judge's own request builder (rubric: the digit form)."""
    template = Template(jc.template_name())
    if jc.mode == "reward-model":
        return judge_reward.request(SAMPLE_PROMPT, SAMPLE_ANSWERS[0], template, jc.system)
    if jc.mode == "rubric":
        return judge_rubric.request(SAMPLE_PROMPT, SAMPLE_ANSWERS[0], template, "digit", jc.system)
    labels = (jc.labels[0], jc.labels[1])
    return judge.request(SAMPLE_PROMPT, *SAMPLE_ANSWERS, template, labels, jc.system)


def check_chat_templates(
    cfg: RunConfig, model: ResolvedModel, judge_model: ResolvedModel | None
) -> None:
    """Each stage's conversation (its system message, its template variables) renders with the
    chat template of the model that reads it: a template that refuses a system turn, or a
    variable it trips on, fails here in one line, before any model loads. Served models render
    their own templates and are left to the server."""
    persona = Persona("sample", SAMPLE_PERSONA)
    stages = [
        (
            model,
            "prompts",
            prompts.requests([persona], Template(cfg.prompts.template), cfg.prompts.system)[0],
            cfg.prompts,
        ),
        (
            model,
            "responses",
            responses.conversations([SAMPLE_PROMPT], cfg.responses)[0],
            cfg.responses,
        ),
    ]
    stages.append((judge_model or model, "judge", sample_judge_turns(cfg.judge), cfg.judge))
    for reader, stage, turns, section in stages:
        if reader.source == "server" or not reader.path:
            continue
        tokenizer = _tokenizer(reader.path, reader.revision)
        if tokenizer is None:
            continue
        try:
            render_chat(tokenizer, turns, template_kwargs(section))
        except Exception as exc:
            raise SaoError(
                f"the chat template of {reader.name} cannot render the {stage} stage's "
                f"conversation ({' '.join(describe(exc).split())}): check {stage}.system and "
                f"{stage}.chat_template_kwargs"
            ) from None
