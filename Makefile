# Two entry points, both self-installing on a fresh machine:
#   make reproduce   -> creates .venv, installs the pinned CPU torch then the toolkit, runs the main job
#   make test        -> same set-up, then the test suite (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup reproduce test lint docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/circuits reproduce all --out results

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

docs: $(STAMP)
	$(BIN)/python scripts/build_docs.py --out site

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
