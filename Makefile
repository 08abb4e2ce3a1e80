# creditrisk — the targets the README names.
# `make demo` runs the main job on the embedded default; `make test` runs the tests.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
SHARED_DATA ?= ../shared/data/default_of_credit_card_clients.csv
CONFIG ?= configs/train.yaml
OUT ?= outputs/train

.PHONY: help install data train promote demo test test-all test-unit lint typecheck \
        check pipelines clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/creditrisk: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/creditrisk  ## create the virtualenv and install the project

data: install  ## import the data: the local copy if present, else download the UCI archive
	@if [ -f "$(SHARED_DATA)" ]; then \
	  $(BIN)/creditrisk data fetch --from-file "$(SHARED_DATA)"; \
	else \
	  $(BIN)/creditrisk data fetch; \
	fi

train: install  ## train with $(CONFIG), register the model in MLflow
	$(BIN)/creditrisk train --config $(CONFIG) --out $(OUT)

demo: data  ## the main job on the embedded default: data, train, register, gate, show
	$(BIN)/creditrisk train --config $(CONFIG) --out $(OUT) > $(OUT).json
	$(BIN)/creditrisk model promote $$($(PY) -c "import json;print(json.load(open('$(OUT).json'))['registered']['version'])") --config $(CONFIG)
	$(BIN)/creditrisk model show
	@$(PY) -c "import json;m=json.load(open('$(OUT)/metrics.json'));[print(f'{k:28s} {m[k]}') for k in ('test_roc_auc','test_pr_auc','test_brier','cv_roc_auc_mean','baseline_test_roc_auc','threshold','train_seconds')]"

test: install  ## the default test run: unit + integration (+ e2e), lint and types
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow" --junitxml=outputs/junit.xml

test-unit: install  ## unit tests only (seconds)
	$(BIN)/pytest -m unit

test-all: install  ## every tier including slow runs
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

clean:  ## remove local state (data cache, MLflow store, outputs)
	rm -rf .creditrisk outputs
