"""Shared helpers: run the real `sao` command line the way a user does."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.dtypes import TEST_DTYPE

SAO = str(Path(sys.executable).parent / "sao")
ROOT = Path(__file__).resolve().parent.parent

# Small enough for a 2-core CPU, big enough to cross a shard boundary: 4 personas, 2 shards, K=3.
# The engine runs in the suite's dtype (tests/dtypes.py); a test adding engine keys keeps it.
TINY = {
    "seed": 11,
    "engine": {"dtype": TEST_DTYPE},
    "personas": {"count": 4},
    "prompts": {"candidates": 2, "max_tokens": 48},
    "responses": {"samples": 3, "max_tokens": 40},
    "output": {"shard_size": 2},
}


def run_sao(
    *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `sao ARGS...` in a subprocess and return the finished process (text output);
    `env` adds variables to this process's environment."""
    return subprocess.run(
        [SAO, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """A YAML config for quick end-to-end runs on the embedded model."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="session")
def hf_run(tmp_path_factory, tiny_config) -> tuple[Path, subprocess.CompletedProcess]:
    """One tiny `sao generate` on the hf engine, shared by the tests that only read it back
    (a test that changes it must leave it as it found it)."""
    out = tmp_path_factory.mktemp("hf") / "out"
    proc = run_sao("generate", "-c", str(tiny_config), "--engine", "hf", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.fixture
def run_copy(hf_run, tmp_path) -> Path:
    """A private copy of the shared tiny hf run (4 personas, 2 shards, complete) to change."""
    out = tmp_path / "run"
    shutil.copytree(hf_run[0], out)
    return out


def requires(module: str) -> pytest.MarkDecorator:
    """Skip a test whose engine package is missing; under CI=true run it anyway, so a missing
    engine fails CI instead of passing it silently."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(
        missing and os.environ.get("CI") != "true", reason=f"{module} not installed"
    )


# What the second model is taught: a few answers in one style, so it judges unlike the first.
LESSONS = [
    ("Name a colour.", "Blue. It is the colour of a clear sky."),
    ("Give me a tip for sleeping well.", "Keep the same bedtime every night, even on weekends."),
    ("What is 2 + 3?", "2 + 3 = 5."),
]


@pytest.fixture(scope="session")
def second_model(tmp_path_factory) -> Path:
    """A second, different local model: the embedded one after three real AdamW steps on a few
    answers, saved as a complete model folder (weights, tokenizer, chat template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sao.models import resolve_model

    source = resolve_model("smollm2-135m-instruct").path
    out = tmp_path_factory.mktemp("second") / "model"
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for question, answer in LESSONS:
        turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        batch = tokenizer.apply_chat_template(turns, return_tensors="pt", return_dict=True)
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# What the thinking model is taught: every reply opens with reasoning between <think> and
# </think>, then answers.
THOUGHTS = [
    ("Name a colour.", "One colour is enough.", "Blue."),
    ("Give me a tip for sleeping well.", "A habit helps.", "Keep the same bedtime every night."),
    ("What is 2 + 3?", "Add them.", "2 + 3 = 5."),
    ("Say hello to my class.", "Short and warm.", "Hello, everyone!"),
]
THINK_LAYERS, THINK_STEPS, THINK_LR = 8, 16, 5e-4  # about 25 s on 2 cores


def thinking_template(template: str) -> str:
    """The embedded model's chat template with a DeepSeek-R1-style switch: the assistant's turn
    opens a reasoning block (`<think>`) unless the template variable `enable_thinking` is false;
    with it false, the template renders exactly as the embedded one."""
    header = "{{ '<|im_start|>assistant\n' }}"
    assert template.endswith(header + "{% endif %}")
    thinking = "{% if enable_thinking is not defined or enable_thinking %}"
    opened = thinking + "{{ '<think>\n' }}{% endif %}"
    return template.removesuffix("{% endif %}") + opened + "{% endif %}"


@pytest.fixture(scope="session")
def switch_judge(second_model, tmp_path_factory) -> Path:
    """The second model's weights behind `thinking_template`: a judge whose template opens a
    reasoning block unless told `enable_thinking: false` (then it is the second model)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("switch") / "model"
    tokenizer = AutoTokenizer.from_pretrained(second_model)
    tokenizer.chat_template = thinking_template(tokenizer.chat_template)
    tokenizer.save_pretrained(out)
    for path in second_model.iterdir():
        if not (out / path.name).exists():
            (out / path.name).symlink_to(path)
    return out


@pytest.fixture(scope="session")
def thinking_model(tmp_path_factory) -> Path:
    """A "thinking" model (`make_thinking_model`)."""
    return make_thinking_model(tmp_path_factory.mktemp("thinking") / "model")


def make_thinking_model(out: Path) -> Path:
    """The embedded model taught (16 real AdamW steps on its top 8 layers) to open every reply
    with <think>…</think> itself, as Qwen3 does; saved to `out` with the embedded template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sao.models import resolve_model

    source = resolve_model("smollm2-135m-instruct").path
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    rows = []
    for question, thought, answer in THOUGHTS:
        asked = [{"role": "user", "content": question}]
        reply = {"role": "assistant", "content": f"<think>\n{thought}\n</think>\n\n{answer}"}
        head = tokenizer.apply_chat_template(
            asked, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        whole = tokenizer.apply_chat_template([*asked, reply], tokenize=True, return_dict=False)
        rows.append((whole, len(head)))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([whole + [pad] * (width - len(whole)) for whole, _ in rows])
    mask = torch.tensor([[1] * len(whole) + [0] * (width - len(whole)) for whole, _ in rows])
    labels = ids.clone()
    for k, (whole, start) in enumerate(rows):
        labels[k, :start] = -100  # learn the replies, not the questions
        labels[k, len(whole) :] = -100
    torch.manual_seed(0)
    for param in model.parameters():  # only the top layers learn: a few seconds a step on a CPU
        param.requires_grad = False
    top = [*model.model.layers[-THINK_LAYERS:], model.model.norm]
    trained = [p for block in top for p in block.parameters()]
    for param in trained:
        param.requires_grad = True
    optimizer = torch.optim.AdamW(trained, lr=THINK_LR)
    for _ in range(THINK_STEPS):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# A run with many pairs for the training tests: every pair above a zero margin, 6 personas,
# short texts (a training step on 2 pairs costs about 4 s on 2 cores).
PAIRS_RUN = {
    **TINY,
    "personas": {"count": 6},
    "prompts": {"candidates": 2, "max_tokens": 32},
    "responses": {"samples": 3, "max_tokens": 24},
    "pairs": {"strategy": "all-above-margin", "min_margin": 0.0},
    "output": {"shard_size": 6},
}


@pytest.fixture(scope="session")
def pairs_run(tmp_path_factory) -> Path:
    """A small real hf run with every strictly ordered pair kept (about a dozen pairs)."""
    base = tmp_path_factory.mktemp("pairs")
    config = base / "pairs.yaml"
    config.write_text(yaml.safe_dump(PAIRS_RUN))
    out = base / "out"
    proc = run_sao("generate", "-c", str(config), "--engine", "hf", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
