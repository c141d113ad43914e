"""The run configuration: pydantic models are the one place an option is defined."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from sao.errors import SaoError

MAX_SHOWN = 40  # characters of a rejected value quoted in an error

# engine keys that change how the records are fetched, not what they are: not in the hash
HOW_KEYS = (
    "retries",
    "retry_backoff_s",
    "base_url",
    "api_key_env",
    "concurrency",
    "timeout_s",
    "patience_s",
    "replicas",
    "ray_address",
)


DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # `vllm serve`'s default port

# engine.vllm_args that change how the same model runs (parallelism, batching, memory, caching,
# compilation), not what it computes: not in the hash. Every other key (quantization,
# kv_cache_dtype, hf_overrides, ...) changes the model's numbers and is hashed.
VLLM_HOW_ARGS = frozenset(
    {
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "distributed_executor_backend",
        "max_num_seqs",
        "max_num_batched_tokens",
        "enable_chunked_prefill",
        "enable_prefix_caching",
        "enforce_eager",
        "compilation_config",
        "swap_space",
        "cpu_offload_gb",
        "block_size",
        "disable_log_stats",
        "disable_custom_all_reduce",
    }
)
# vllm.LLM arguments sao sets from its own keys
VLLM_OWN_ARGS = {
    "model": "model",
    "tokenizer": "model",
    "dtype": "engine.dtype",
    "seed": "seed",
    "max_model_len": "engine.max_model_len",
    "gpu_memory_utilization": "engine.gpu_memory_utilization",
    "revision": "model (org/name@commit)",
    "tokenizer_revision": "model (org/name@commit)",
}
# from_pretrained arguments engine.hf_args accepts (from_pretrained files any unknown keyword
# into the model config silently, so a typo would do nothing): where and how, not what
HF_HOW_ARGS = frozenset(
    {
        "device_map",
        "max_memory",
        "offload_folder",
        "offload_buffers",
        "attn_implementation",
        "experts_implementation",
        "tp_plan",
        "tp_size",
        "use_kernels",
        "low_cpu_mem_usage",
        "disable_mmap",
    }
)
# ... and these change what the model computes or which weights load: hashed
HF_WHAT_ARGS = frozenset(
    {"quantization_config", "trust_remote_code", "use_safetensors", "variant", "subfolder"}
)
HF_OWN_ARGS = {"dtype": "engine.dtype", "torch_dtype": "engine.dtype", "revision": "model"}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _system_field() -> Any:
    """A stage's system message: one place for its default and description."""
    return Field(None, description="system message sent before this stage's user turn; null: none")


def _template_kwargs_field() -> Any:
    """A stage's chat-template variables: one place for its default and description."""
    return Field(
        default_factory=dict,
        description="variables for the chat template on every engine "
        "(e.g. enable_thinking: false for a thinking model)",
    )


# how sao itself calls the chat template: not a template variable a stage may set
RENDER_ARGS = (
    "conversation",
    "add_generation_prompt",
    "continue_final_message",
    "tokenize",
    "return_dict",
    "return_tensors",
    "return_assistant_tokens_mask",
    "chat_template",
    "padding",
    "truncation",
    "max_length",
    "tokenizer_kwargs",
)


def _check_template_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Refuse keys that would override how sao renders a conversation."""
    owned = sorted(set(kwargs) & set(RENDER_ARGS))
    if owned:
        raise ValueError(f"{owned[0]} is how sao calls the chat template, not a template variable")
    return kwargs


TemplateKwargsField = Annotated[dict[str, Any], AfterValidator(_check_template_kwargs)]


class EngineConfig(Section):
    """Which inference backend runs the model, and how."""

    name: Literal["auto", "hf", "vllm", "openai", "ray"] = Field(
        "auto",
        description="auto picks the fastest here; openai: a server at base_url; "
        "ray: vLLM replicas on a Ray cluster",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bf16 on GPU and bf16-capable CPUs, else fp32"
    )
    batch_size: int = Field(
        32, ge=1, description="hf: conversations per generate() call; ray: rows per Ray Data batch"
    )
    max_model_len: int = Field(4096, ge=256, description="vllm: context length")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vllm: GPU share")
    retries: int = Field(
        2, ge=0, description="an engine error reruns the shard up to this many times, then stops"
    )
    retry_backoff_s: float = Field(
        10.0, ge=0, description="seconds before the first rerun, doubled for each next one"
    )
    base_url: str | None = Field(
        None, description="openai: the server's /v1 URL; null: $OPENAI_BASE_URL or localhost:8000"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: variable holding the API key")
    concurrency: int = Field(64, ge=1, description="openai: requests in flight at once")
    timeout_s: float = Field(600.0, gt=0, description="openai: seconds one request may take")
    patience_s: float = Field(
        600.0, ge=0, description="openai: how long to retry a request while the server is down"
    )

    vllm_args: dict[str, Any] = Field(
        default_factory=dict,
        description="vllm, ray: more vllm.LLM arguments (tensor_parallel_size, quantization, "
        "kv_cache_dtype, max_num_seqs, enforce_eager, ...)",
    )
    hf_args: dict[str, Any] = Field(
        default_factory=dict,
        description="hf: more from_pretrained arguments (device_map, attn_implementation, "
        "quantization_config, trust_remote_code)",
    )
    replicas: int = Field(1, ge=1, description="ray: vLLM replicas, one GPU each (a core on CPU)")
    ray_address: str | None = Field(
        None,
        description="ray: the cluster to join (auto, ray://host:10001); null: $RAY_ADDRESS, "
        "else a local cluster",
    )

    @model_validator(mode="after")
    def _engine_args(self) -> EngineConfig:
        """No argument sao sets itself; hf_args only from_pretrained's own keywords."""
        for table, owned in (("vllm_args", VLLM_OWN_ARGS), ("hf_args", HF_OWN_ARGS)):
            for key in getattr(self, table):
                if key in owned:
                    raise ValueError(f"{table}.{key}: set {owned[key]} instead")
        known = HF_HOW_ARGS | HF_WHAT_ARGS
        for key in self.hf_args:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"hf_args: unknown from_pretrained argument '{key}'{hint}")
        return self

    def data_args(self) -> dict[str, Any]:
        """vllm_args and hf_args as the config hash sees them: the keys that change samples."""
        return {
            "vllm_args": {k: v for k, v in self.vllm_args.items() if k not in VLLM_HOW_ARGS},
            "hf_args": {k: v for k, v in self.hf_args.items() if k not in HF_HOW_ARGS},
        }

    def server_url(self) -> str:
        """openai: the configured URL, else $OPENAI_BASE_URL, else a local `vllm serve`."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


class PersonaConfig(Section):
    """Where personas come from and how many are sampled."""

    source: str = Field(
        "bundled", description="bundled | path/to/file.jsonl | hf:<dataset>[:<column>[:<split>]]"
    )
    count: int = Field(64, ge=1, description="personas sampled (without replacement)")
    skip: int = Field(
        0, ge=0, description="leave out the first N of the seeded draw (disjoint slices: iterate)"
    )
    enabled: bool = Field(
        True, description="false: the ablation, the same template with no persona (count prompts)"
    )


def _greedy_copies(temperature: float, n: int, key: str) -> None:
    """Greedy decoding gives n identical samples (and hf refuses n > 1): refuse it here."""
    if temperature == 0 and n > 1:
        raise ValueError(f"temperature 0 samples the same text {n} times; raise it or set {key}")


class PromptConfig(Section):
    """Persona → user prompt synthesis."""

    template: str = Field("persona_prompt.j2", description="jinja2 template in templates/")
    candidates: int = Field(2, ge=1, description="prompts sampled per persona; first clean kept")
    temperature: float = Field(0.9, ge=0)
    top_p: float = Field(1.0, gt=0, le=1, description="1.0 skips a full-vocab sort per token")
    max_tokens: int = Field(96, ge=8)
    min_chars: int = Field(12, ge=1, description="shorter cleaned prompts are rejected")
    max_chars: int = Field(800, ge=16, description="longer cleaned prompts are rejected")
    system: str | None = _system_field()
    chat_template_kwargs: TemplateKwargsField = _template_kwargs_field()

    @model_validator(mode="after")
    def _not_greedy_copies(self) -> PromptConfig:
        _greedy_copies(self.temperature, self.candidates, "prompts.candidates: 1")
        return self


class FilterConfig(Section):
    """Run-wide duplicate filters on prompts, applied before any response is sampled."""

    exact: bool = Field(True, description="drop a prompt equal to an earlier one (case, spacing)")
    near_duplicate: float | None = Field(
        0.9, ge=0.5, le=1, description="drop at this word-3-gram Jaccard (MinHash LSH); null: off"
    )
    rouge_l: float | None = Field(
        None, gt=0, lt=1, description="drop above this ROUGE-L F1 (Self-Instruct: 0.7); null: off"
    )


class ResponseConfig(Section):
    """K sampled answers per prompt."""

    samples: int = Field(4, ge=2, description="K responses per prompt")
    temperature: float = Field(0.8, gt=0, description="above 0: K greedy answers would be one")
    top_p: float = Field(1.0, gt=0, le=1, description="1.0 skips a full-vocab sort per token")
    max_tokens: int = Field(256, ge=8)
    system: str | None = _system_field()
    chat_template_kwargs: TemplateKwargsField = _template_kwargs_field()


JudgeMode = Literal["pairwise-logprob", "pairwise-text", "rubric", "reward-model"]
DEFAULT_JUDGE_TEMPLATES: dict[str, str] = {
    "pairwise-logprob": "judge_pairwise.j2",
    "pairwise-text": "judge_pairwise_text.j2",
    "rubric": "judge_rubric.j2",
    "reward-model": "judge_reward.j2",
}


class JudgeConfig(Section):
    """The self-judge: how K answers become a preference matrix P (DESIGN §4)."""

    model: str | None = Field(
        None,
        description="null: the generator judges its own answers (self-judging); else another "
        "model (alias, folder or hub id; openai: a served name) judges them on its own engine",
    )
    engine: dict[str, Any] = Field(
        default_factory=dict,
        description="engine keys that differ for the judge model's engine "
        "(e.g. gpu_memory_utilization, base_url); needs judge.model",
    )
    mode: JudgeMode = Field(
        "pairwise-logprob",
        description="pairwise-logprob | pairwise-text (no logprobs needed) | rubric (pointwise) "
        "| reward-model (judge.model is a sequence-classification reward model)",
    )
    template: str | None = Field(None, description="jinja2 template; null: the mode's default")
    labels: tuple[str, str] = Field(("A", "B"), description="single-token verdict labels")
    opponents: int | None = Field(
        None, ge=1, description="pairwise: null judges every pair; n: ~n per answer, rest fitted"
    )
    max_tokens: int = Field(32, ge=4, description="text verdicts and rubric JSON: token cap")
    rubric_scoring: Literal["auto", "logprob", "json"] = Field(
        "auto", description="rubric: score expectation from logprobs, or a JSON-schema answer"
    )
    rubric_scale: float = Field(
        1.3, gt=0, description="rubric: P[i][j] = sigmoid((s_i - s_j) / scale); judge-eval fits it"
    )
    reward_scale: float = Field(
        1.0,
        gt=0,
        description="reward-model: P[i][j] = sigmoid((r_i - r_j) / scale) over the raw rewards",
    )
    tie_band: float = Field(
        0.02, ge=0, lt=0.5, description="|P - 1/2| within this is a tie (and breaks a cycle)"
    )
    min_label_mass: float = Field(
        0.01,
        ge=0,
        lt=0.5,
        description="logprob judges: labels carrying less probability than this give no verdict",
    )
    system: str | None = _system_field()
    chat_template_kwargs: TemplateKwargsField = _template_kwargs_field()

    def template_name(self) -> str:
        """The template this mode renders."""
        return self.template or DEFAULT_JUDGE_TEMPLATES[self.mode]


class ReasoningConfig(Section):
    """Reasoning ("thinking") text: kept out of prompts, answers and verdicts."""

    markers: tuple[str, str] = Field(
        ("<think>", "</think>"), description="where the model's reasoning opens and closes"
    )
    keep: bool = Field(False, description="answers keep their reasoning in responses[].reasoning")

    @model_validator(mode="after")
    def _two_markers(self) -> ReasoningConfig:
        opening, closing = self.markers
        if not opening.strip() or not closing.strip() or opening == closing:
            raise ValueError("markers must be two different, non-blank strings")
        return self


class PairConfig(Section):
    """How preference pairs are picked from the scores."""

    strategy: Literal["best-worst", "all-above-margin", "consistent-only"] = Field(
        "best-worst", description="consistent-only: pairs whose verdict survives the swap"
    )
    min_margin: float = Field(0.01, ge=0, le=1, description="score gap below which no pair")
    max_length_ratio: float | None = Field(
        None, ge=1, description="length control: drop pairs whose chosen is this x longer"
    )


class OutputConfig(Section):
    """Where shards go and how big they are."""

    dir: str = Field("out", description="output folder (shards + manifest.json)")
    shard_size: int = Field(16, ge=1, description="personas per shard (GPU: hundreds+)")


class RunConfig(Section):
    """A whole `sao generate` run."""

    seed: int = 0
    model: str = Field("smollm2-135m-instruct", description="alias, local folder or hub id")
    engine: EngineConfig = EngineConfig()
    personas: PersonaConfig = PersonaConfig()
    prompts: PromptConfig = PromptConfig()
    filters: FilterConfig = FilterConfig()
    responses: ResponseConfig = ResponseConfig()
    judge: JudgeConfig = JudgeConfig()
    reasoning: ReasoningConfig = ReasoningConfig()
    pairs: PairConfig = PairConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _judge_engine_keys(self) -> RunConfig:
        """judge.engine holds engine keys only, valid ones, and only beside a judge model; a
        reward model is never the generator."""
        if self.judge.mode == "reward-model" and self.judge.model is None:
            raise ValueError(
                "judge.mode reward-model needs judge.model: a sequence-classification reward "
                "model (the generator writes text, it gives no reward)"
            )
        if not self.judge.engine:
            return self
        if self.judge.model is None:
            raise ValueError("judge.engine sets the judge model's engine: set judge.model too")
        unknown = [key for key in self.judge.engine if key not in EngineConfig.model_fields]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(EngineConfig.model_fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"judge.engine: unknown engine key '{unknown[0]}'{hint}")
        try:
            self.judge_engine()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"judge.engine.{where}: {err['msg']}") from None
        return self

    def judge_engine(self) -> EngineConfig:
        """The judge model's engine: `engine` with `judge.engine`'s keys over it."""
        return EngineConfig.model_validate({**self.engine.model_dump(), **self.judge.engine})

    def data_dict(self) -> dict[str, Any]:
        """The settings that determine the records (everything but where they are written)."""
        data = self.model_dump(mode="json")
        data["output"].pop("dir")
        if not data["personas"]["skip"]:
            data["personas"].pop("skip")  # the hash of a run without a skip is what it was
        for key in HOW_KEYS:
            data["engine"].pop(key)
            data["judge"]["engine"].pop(key, None)
        data["engine"].update(self.engine.data_args())
        if self.judge.model is not None:
            judge_args = self.judge_engine().data_args()
            for key in ("vllm_args", "hf_args"):
                if key in data["judge"]["engine"]:
                    data["judge"]["engine"][key] = judge_args[key]
        return data

    def data_hash(self) -> str:
        """Hash of `data_dict()`: two runs with the same hash produce the same records."""
        return hash_data(self.data_dict())


def hash_data(data: dict[str, Any]) -> str:
    """The config hash of a `data_dict()` (as the manifest stores it)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def close_key(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> str:
    """' (did you mean ...?)' for an unknown key that is a near miss of a real one under
    `root` (default: a run's config)."""
    section: Any = root or RunConfig
    for part in loc[:-1]:
        field = section.model_fields.get(part) if isinstance(part, str) else None
        section = field.annotation if field is not None else None
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return ""
    match = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _shown(value: Any) -> str:
    """A short one-line repr of a rejected value."""
    text = " ".join(repr(value).split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def first_error(exc: ValidationError, root: type[BaseModel] | None = None) -> str:
    """The first validation error as 'where: what (got value)', plus how many more there are."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}'{close_key(err['loc'], root)}{more}"
    msg = "should be a mapping of keys" if err["type"] == "model_type" else err["msg"]
    if err["type"] == "value_error":  # a validator's own sentence: no pydantic prefix
        msg = msg.removeprefix("Value error, ")
    got = ""
    if err["type"] != "missing" and not isinstance(err.get("input"), dict):
        got = f" (got {_shown(err.get('input'))})"
    if not err["loc"]:  # a check across sections says where itself
        return f"{msg}{got}{more}"
    return f"{where}: {msg}{got}{more}"


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; SaoError for anything else."""
    if path.is_dir():
        raise SaoError(f"config {path} is a folder, not a YAML file")
    if not path.is_file():
        raise SaoError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "not valid YAML").split())
        raise SaoError(f"config {path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError as exc:
        raise SaoError(f"config {path}: not UTF-8 text (byte {exc.start + 1})") from None
    except OSError as exc:
        raise SaoError(f"cannot read config {path}: {exc.strerror or exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SaoError(f"config {path}: the top level must be a mapping of keys")
    return loaded


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts; a section the file set to a non-mapping is left to fail."""
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            return  # validation reports the bad section, with its value
        node = child
    node[leaf] = value


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config (or defaults), apply dotted-key overrides, validate."""
    data = read_yaml(Path(path)) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            apply_override(data, dotted, value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        source = f"config {path}" if path is not None else "config"
        raise SaoError(f"{source}: {first_error(exc)}") from None


def diff_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            keys.extend(diff_keys(va, vb, name + "."))
        elif va != vb:
            keys.append(name)
    return keys


def example_yaml() -> str:
    """A commented example config generated from the models' defaults and descriptions."""
    lines = [
        "# sao generate configuration. Every key is optional; flags override these values.",
        "# Run: sao generate --config sao.yaml",
    ]
    for name, field in RunConfig.model_fields.items():
        default = field.default
        if isinstance(default, BaseModel):
            lines.append("")
            lines.append(f"{name}:  # {(type(default).__doc__ or '').strip()}")
            for sub, sub_field in type(default).model_fields.items():
                value = json.dumps(getattr(default, sub))
                note = f"  # {sub_field.description}" if sub_field.description else ""
                lines.append(f"  {sub}: {value}{note}")
        else:
            note = f"  # {field.description}" if field.description else ""
            lines.append(f"{name}: {json.dumps(default)}{note}")
    return "\n".join(lines) + "\n"


PRESETS = Path(__file__).resolve().parent / "presets"


def preset_yaml(name: str) -> str:
    """The commented config of a named setup (`sao config init --preset NAME`)."""
    names = sorted(p.stem for p in PRESETS.glob("*.yaml"))
    path = PRESETS / f"{name}.yaml"
    if name not in names:
        raise SaoError(f"unknown preset '{name}': choose {', '.join(names)}")
    return path.read_text(encoding="utf-8")
