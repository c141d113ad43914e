"""Which engine failures a rerun can fix: classified by the real exception classes each engine's
library raises (vLLM, the openai client, torch), and what the run does with each."""

from __future__ import annotations

import httpx
import openai
import pytest
import torch

from sao.engines.base import Sampling
from sao.engines.guard import GuardedEngine, never_succeeds
from sao.errors import EngineError, RequestRefused
from sao.seeds import request_seed
from tests.conftest import requires


def status_error(cls: type, code: int) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1:8000/v1/chat/completions")
    return cls("refused", response=httpx.Response(code, request=request), body=None)


def chained(outer: Exception, cause: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception as exc:
            raise outer from exc
    except Exception as caught:
        return caught


REFUSED = [
    ValueError("bad argument"),
    TypeError("wrong params type"),
    status_error(openai.BadRequestError, 400),
    status_error(openai.NotFoundError, 404),
    status_error(openai.UnprocessableEntityError, 422),
    chained(RuntimeError("the Ray Data stream stopped"), ValueError("max_tokens")),
]
TRANSIENT = [
    RuntimeError("CUDA error: an illegal memory access"),
    torch.OutOfMemoryError("CUDA out of memory"),
    status_error(openai.RateLimitError, 429),
    status_error(openai.InternalServerError, 503),
    openai.APIConnectionError(request=httpx.Request("GET", "http://127.0.0.1:1/v1/models")),
    chained(torch.OutOfMemoryError("out of memory"), ValueError("while allocating")),
]


@pytest.mark.parametrize("exc", REFUSED, ids=lambda e: type(e).__name__)
def test_requests_that_can_never_succeed_are_refused(exc):
    assert never_succeeds(exc) is not None


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_failures_a_rerun_can_fix_are_retried(exc):
    assert never_succeeds(exc) is None


@requires("vllm")
def test_vllm_argument_checks_are_refused_and_a_dead_engine_is_not():
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError

    too_long = VLLMValidationError("This model's maximum context length is 4096 tokens.")
    assert never_succeeds(too_long) is too_long
    assert not isinstance(too_long, ValueError)  # found by its class name, not as a ValueError
    assert never_succeeds(chained(EngineDeadError(), ValueError("x"))) is None


class Bug:
    """An engine whose call trips over a TypeError inside sao's own code."""

    name, supports_logprobs, generated_tokens = "bug", True, 0

    def chat(self, conversations, params, template_kwargs=None):
        return request_seed("not a seed", 1, 2)


class Failing:
    """An engine whose every call raises `exc` (the guard's logic, not a model, is tested)."""

    name, supports_logprobs, generated_tokens = "failing", True, 0

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def chat(self, conversations, params, template_kwargs=None):
        raise self.exc

    def label_logprobs(self, conversations, labels, template_kwargs=None):
        raise self.exc

    def close(self):
        pass


def test_the_guard_stops_on_a_refusal_and_retries_the_rest():
    with pytest.raises(RequestRefused, match=r"^the engine refused a request and would again "):
        GuardedEngine(Failing(ValueError("prompt too long"))).chat([], Sampling())
    assert RequestRefused.exit_code == 2
    with pytest.raises(TypeError):  # raised in sao's own code: a bug, neither retried nor refused
        GuardedEngine(Bug()).chat([], Sampling())
    with pytest.raises(EngineError, match="OutOfMemoryError"):
        GuardedEngine(Failing(torch.OutOfMemoryError("oom"))).label_logprobs([], ["A", "B"])
