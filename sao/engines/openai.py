"""OpenAI-compatible server engine: `vllm serve`, SGLang, llama.cpp server, TGI, or a hosted API.

Requests go out concurrently (at most `concurrency` in flight) through the `openai` client.
A request that meets a connection error, a timeout, a 429 or a 5xx is retried with jittered
exponential back-off for up to `patience_s` seconds, so a server restarted mid-run only pauses
the run. Judge logprobs come from `top_logprobs`; without them the judge must use text verdicts.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sao.engines.base import Completion, Message, Sampling, TemplateKwargs
from sao.engines.prefix import in_waves
from sao.errors import RequestRefused, SaoError, describe
from sao.seeds import request_seed

T = TypeVar("T")
TOP_LOGPROBS = 20  # vLLM's default max_logprobs; OpenAI's own limit too
FIRST_WAIT_S, LONGEST_WAIT_S = 1.0, 10.0


class ServerUnavailable(RuntimeError):
    """The server kept failing for longer than the engine's patience."""


class OpenAIEngine:
    """Chat completions against an OpenAI-compatible server, many requests in flight."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 64,
        timeout_s: float = 600.0,
        patience_s: float = 600.0,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise SaoError("engine 'openai' needs the openai package: pip install openai") from None
        self._errors = openai
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=os.environ.get(api_key_env) or "EMPTY",
            max_retries=0,  # retried here, with a longer patience than the client's
            timeout=timeout_s,
        )
        self.base_url = base_url
        self.patience_s = patience_s
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sao-openai")
        self.root: str | None = None  # the model the server loaded, when it says (vLLM does)
        self.model = self._pick_model(model)
        self.generated_tokens = 0
        self.supports_logprobs = self._probe_logprobs()

    # ------------------------------------------------------------------ protocol

    def chat(
        self,
        conversations: list[list[Message]],
        params: Sampling,
        template_kwargs: TemplateKwargs = None,
    ) -> list[list[Completion]]:
        """One request per conversation with `n` samples; the server (vLLM) seeds choice j of
        request i with `request_seed(base, i, n) + j`, the scheme's seed (`sao.seeds`)."""
        per_choice_tokens = params.n > 1  # usage counts all choices together: ask for tokens

        def one(index: int) -> list[Completion]:
            seed = request_seed(params.seed, index, params.n)
            extra = _template_body(template_kwargs)
            if params.json_schema is not None:
                schema = {"name": "answer", "schema": json.loads(params.json_schema)}
                extra["response_format"] = {"type": "json_schema", "json_schema": schema}
            response = self._request(
                lambda: self.client.chat.completions.create(
                    model=self.model,
                    messages=conversations[index],
                    n=params.n,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_tokens,
                    seed=seed,
                    logprobs=per_choice_tokens or None,
                    **extra,
                )
            )
            choices = sorted(response.choices, key=lambda c: c.index)
            counts = [_choice_tokens(c) for c in choices]
            if not per_choice_tokens and response.usage is not None:
                counts = [response.usage.completion_tokens]
            self.generated_tokens += sum(counts)
            return [
                Completion(
                    text=(c.message.content or "").strip(),
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    num_tokens=n,
                    seed=None if seed is None else seed + c.index,
                )
                for c, n in zip(choices, counts, strict=True)
            ]

        return self._map(one, range(len(conversations)))

    def label_logprobs(
        self,
        conversations: list[list[Message]],
        labels: list[str],
        template_kwargs: TemplateKwargs = None,
    ) -> list[dict[str, float]]:
        """Log-probability of each label as the first generated token, from `top_logprobs`.

        A label outside the top 20 counts as -inf: the judge then reads no verdict from the call.
        Calls sharing a prefix go in waves, so the server's prefix cache computes it once.
        """

        def one(index: int) -> dict[str, float]:
            response = self._request(
                lambda: self.client.chat.completions.create(
                    model=self.model,
                    messages=conversations[index],
                    max_tokens=1,
                    temperature=0.0,
                    logprobs=True,
                    top_logprobs=TOP_LOGPROBS,
                    **_template_body(template_kwargs),
                )
            )
            self.generated_tokens += 1
            content = response.choices[0].logprobs
            top = content.content[0].top_logprobs if content and content.content else []
            found = {label: -math.inf for label in labels}
            for entry in top:
                if entry.token in found:
                    found[entry.token] = max(found[entry.token], float(entry.logprob))
            return found

        texts = ["\n".join(m["content"] for m in c) for c in conversations]
        return in_waves(texts, lambda wave: self._map(one, wave))

    def identity(self) -> dict[str, Any]:
        """What the server says it serves: the model id, and (vLLM) the model it loaded."""
        return {"served": self.model, "root": self.root}

    def close(self) -> None:
        """Stop the request threads and close the HTTP client."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # ------------------------------------------------------------------ helpers

    def _map(self, fn: Callable[[int], T], indices: Any) -> list[T]:
        """`fn` over indices on the request threads, results in order; the first error raises."""
        futures = [self.pool.submit(fn, i) for i in indices]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _request(self, call: Callable[[], T], patience_s: float | None = None) -> T:
        """Run one request; retry transient failures with back-off until `patience_s` passes."""
        e = self._errors
        transient = (e.APIConnectionError, e.RateLimitError, e.InternalServerError)
        patience_s = self.patience_s if patience_s is None else patience_s
        deadline = time.monotonic() + patience_s
        wait = FIRST_WAIT_S
        while True:
            try:
                return call()
            except transient as exc:  # APITimeoutError is an APIConnectionError
                pause = _retry_after(exc) or wait * (1 + 0.25 * random.random())
                if time.monotonic() + pause > deadline:
                    raise ServerUnavailable(
                        f"{self.base_url} kept failing for {patience_s:g} s: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                time.sleep(pause)
                wait = min(wait * 2, LONGEST_WAIT_S)
            except e.APIStatusError as exc:  # 4xx: the request itself is wrong; no retry
                raise RequestRefused(
                    f"{self.base_url} refused a request, and would again: {describe(exc)}; "
                    "committed shards are kept"
                ) from None

    def _pick_model(self, wanted: str | None) -> str:
        """The served model: `wanted` if the server lists it, else the only one it serves."""
        listed = self._request(lambda: self.client.models.list(), min(self.patience_s, 60.0))
        served = [m.id for m in listed.data]
        roots = {m.id: getattr(m, "root", None) for m in listed.data}  # vLLM: the loaded model
        if wanted is None and len(served) == 1:
            wanted = served[0]
        if wanted in served:
            self.root = roots[wanted]
            return wanted
        listing = ", ".join(served) or "none"
        if wanted is None:
            raise SaoError(f"{self.base_url} serves several models ({listing}); set model")
        raise SaoError(f"{self.base_url} does not serve {wanted!r} (it serves: {listing})")

    def _probe_logprobs(self) -> bool:
        """True when the server returns top log-probabilities (a one-token request)."""
        response = self._request(
            lambda: self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": "Say A."}],
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=2,
            )
        )
        logprobs = response.choices[0].logprobs
        return bool(logprobs and logprobs.content and logprobs.content[0].top_logprobs)


def _choice_tokens(choice: Any) -> int:
    """Tokens of one choice, counted from its returned log-probabilities."""
    logprobs = getattr(choice, "logprobs", None)
    return len(logprobs.content) if logprobs and logprobs.content else 0


def _retry_after(exc: Exception) -> float | None:
    """Seconds from a Retry-After header, when the server sent one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), LONGEST_WAIT_S) if value else None
    except ValueError:
        return None


def _template_body(template_kwargs: TemplateKwargs) -> dict[str, Any]:
    """The request's extra body carrying `chat_template_kwargs` (vLLM and SGLang servers read
    it); nothing when there are none, so servers that do not know the field never see it."""
    return {"extra_body": {"chat_template_kwargs": template_kwargs}} if template_kwargs else {}
