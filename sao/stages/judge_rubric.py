"""Rubric mode: each answer scored alone on an additive 0–5 rubric, then P by a logistic.

With log-probabilities the score is its expectation over the six digit labels (one forward
pass per answer); otherwise the judge writes `{"score": n}` under a JSON schema (structured
outputs) and anything else is counted as a parse failure. P[i][j] = σ((s_i − s_j) / scale);
`sao judge-eval` fits `scale` on probes with a known better answer.
"""

from __future__ import annotations

import json
import math
from itertools import combinations

from sao.config import JudgeConfig
from sao.engines.base import Engine, Message, Sampling
from sao.stages import conversation, opens_reasoning, template_kwargs
from sao.stages.judge_diagnostics import Diagnostics
from sao.stages.verdicts import WEAK_LABEL_MASS, Call, Verdicts, assemble, count_flag, label_mass
from sao.templates import Template
from sao.text.reasoning import DEFAULT_MARKERS, answer_text

POINTS = [str(n) for n in range(6)]  # the digit labels 0–5
SCORE_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 5}},
        "required": ["score"],
        "additionalProperties": False,
    }
)


def scoring(cfg: JudgeConfig, engine: Engine) -> str:
    """ "logprob" or "json": auto uses log-probabilities wherever the engine returns them."""
    if cfg.rubric_scoring != "auto":
        return cfg.rubric_scoring
    return "logprob" if getattr(engine, "supports_logprobs", True) else "json"


def request(
    prompt: str, response: str, template: Template, answer_format: str, system: str | None = None
) -> list[Message]:
    """The rubric conversation for one answer (after judge.system, when set)."""
    content = template.render(prompt=prompt, response=response, answer_format=answer_format)
    return conversation(system, {"role": "user", "content": content})


def sigmoid(x: float) -> float:
    """1 / (1 + e^−x) without overflow for large |x|."""
    return 0.5 * (1.0 + math.tanh(0.5 * x))


def expected_score(logprobs: dict[str, float], min_mass: float) -> float | None:
    """Mean points under the digit labels' renormalised probabilities; None (no verdict) when
    the digits together carry less than `min_mass` (a digit absent from a server's top
    log-probabilities counts as zero)."""
    top = max(logprobs.values())
    if top == -math.inf or label_mass(logprobs) < min_mass:
        return None
    weights = {k: math.exp(v - top) for k, v in logprobs.items() if v > -math.inf}
    total = sum(weights.values())
    return sum(int(k) * w for k, w in weights.items()) / total


def parse_score(text: str) -> float | None:
    """The integer score of a `{"score": n}` reply (0 ≤ n ≤ 5), else None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {"score"}:
        return None
    score = value["score"]
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 5:
        return None
    return float(score)


def score_calls(
    engine: Engine,
    conversations: list[list[Message]],
    how: str,
    cfg: JudgeConfig,
    markers: tuple[str, str] = DEFAULT_MARKERS,
):
    """One Call per answer, carrying its score (None when unparsed); a JSON reply is read
    without its reasoning (between `markers`)."""
    if not conversations:
        return []
    kwargs = template_kwargs(cfg)
    if how == "logprob":
        calls = []
        for lp in engine.label_logprobs(conversations, POINTS, kwargs):
            score = expected_score(lp, cfg.min_label_mass)
            best = max(POINTS, key=lambda k: lp[k]) if score is not None else "unparsed"
            weak = score is not None and label_mass(lp) < WEAK_LABEL_MASS
            raw = json.dumps(lp)
            calls.append(
                Call(best, 1, raw, score=score, low_label_mass=weak, no_label_mass=score is None)
            )
        return calls
    params = Sampling(
        n=1, temperature=0.0, top_p=1.0, max_tokens=cfg.max_tokens, json_schema=SCORE_SCHEMA
    )
    calls = []
    opened = opens_reasoning(engine, conversations, kwargs, markers)
    for (reply,) in engine.chat(conversations, params, kwargs):
        score = parse_score(answer_text(reply.text, markers, opened))
        verdict = "unparsed" if score is None else str(int(score))
        calls.append(Call(verdict, reply.num_tokens, reply.text, score=score))
    return calls


def judge(
    engine: Engine,
    items: list[tuple[str, list[str]]],
    template: Template,
    cfg: JudgeConfig,
    markers: tuple[str, str] = DEFAULT_MARKERS,
) -> list[Verdicts]:
    """Score every answer of every record in one batched call, then build each P."""
    how = scoring(cfg, engine)
    conversations = [
        request(prompt, text, template, "digit" if how == "logprob" else "json", cfg.system)
        for prompt, texts in items
        for text in texts
    ]
    calls = iter(score_calls(engine, conversations, how, cfg, markers))
    return [
        pointwise_record("rubric", [next(calls) for _ in texts], cfg.rubric_scale, cfg)
        for _, texts in items
    ]


def pointwise_record(mode: str, mine: list[Call], scale: float, cfg: JudgeConfig) -> Verdicts:
    """One record's P from one score per answer: P[i][j] = σ((s_i − s_j) / scale); an answer
    without a score leaves its cells to be estimated."""
    k = len(mine)
    diag = Diagnostics(mode=mode, calls=k, generated_tokens=sum(c.tokens for c in mine))
    diag.parse_failures = sum(c.score is None for c in mine)
    diag.label_mass_failures = sum(c.no_label_mass for c in mine)
    measured, consistent = {}, {}
    for i, j in combinations(range(k), 2):
        si, sj = mine[i].score, mine[j].score
        if si is None or sj is None:
            continue
        measured[(i, j)] = sigmoid((si - sj) / scale)
        if si != sj:
            consistent[(i, j)] = i if si > sj else j  # pointwise: no order to flip
    judgments = [
        {
            "i": i,
            "j": None,
            "order": "pointwise",
            "p_first": None,
            "score": c.score,
            "verdict": c.verdict,
            "tokens": c.tokens,
            "raw": c.raw,
        }
        for i, c in enumerate(mine)
    ]
    flags: list[str] = []
    count_flag(flags, "judge_parse_failure", diag.parse_failures)
    count_flag(flags, "judge_low_label_mass", sum(c.low_label_mass for c in mine))
    count_flag(flags, "judge_no_label_mass", diag.label_mass_failures)
    return assemble(k, measured, judgments, diag, cfg.tie_band, consistent, flags)
