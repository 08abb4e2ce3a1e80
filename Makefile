# creditrisk — the targets the README names.
# `make demo` runs the main job on the embedded default; `make test` runs the tests.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
SHARED_DATA ?= ../shared/data/default_of_credit_card_clients.csv
CONFIG ?= configs/train.yaml
OUT ?= outputs/train

.PHONY: help install data train demo test test-all test-unit lint typecheck \
        pipelines pipeline-local serve bench clean system-deps tools \
        sync-monitoring kind-up kind-down images bench-batch bench-hostile \
        dashboards bench-monitoring ci-cold

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

INSTALL_LOG ?= .creditrisk/install.log

$(BIN)/creditrisk: pyproject.toml constraints.txt
	@mkdir -p $(dir $(INSTALL_LOG))
	@echo "installing the project into $(VENV) (pip output: $(INSTALL_LOG))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip > $(INSTALL_LOG) 2>&1 \
	  && $(PY) -m pip install -c constraints.txt -e '.[dev]' >> $(INSTALL_LOG) 2>&1 \
	  || { tail -n 30 $(INSTALL_LOG); echo "pip failed; full log: $(INSTALL_LOG)"; exit 1; }
	@touch $@

install: $(BIN)/creditrisk  ## create the virtualenv and install the project

data: install  ## import the data: the local copy if present, else download the UCI archive
	@if [ -f "$(SHARED_DATA)" ]; then \
	  $(BIN)/creditrisk data fetch --from-file "$(SHARED_DATA)"; \
	else \
	  $(BIN)/creditrisk data fetch; \
	fi

train: install  ## train with $(CONFIG), register the model in MLflow
	$(BIN)/creditrisk train --config $(CONFIG) --out $(OUT)

DEMO_CONFIG ?= configs/quick.yaml

demo: install  ## the whole system on this machine (creditrisk stack up; stop: creditrisk stack down)
	@# Prometheus and the Pushgateway (Debian packages) when they can be installed; else
	@# one line says how, and the stack runs without them.
	@if command -v prometheus >/dev/null && { command -v prometheus-pushgateway || command -v pushgateway; } >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  bash scripts/install-system-deps.sh --only prometheus prometheus-pushgateway \
	    || echo "could not install Prometheus and the Pushgateway: the stack runs without them"; \
	else \
	  echo "without Prometheus and the Pushgateway; to have them: sudo bash scripts/install-system-deps.sh --only prometheus prometheus-pushgateway"; \
	fi
	@$(BIN)/creditrisk stack up --config $(DEMO_CONFIG) \
	  $$([ -f "$(SHARED_DATA)" ] && echo --data "$(SHARED_DATA)")

pipelines: install  ## compile the KFP pipelines into pipelines/compiled/ (golden files)
	env -u CREDITRISK_IMAGE_REGISTRY -u CREDITRISK_IMAGE_TAG \
	  $(BIN)/creditrisk pipeline compile --out pipelines/compiled

pipeline-local: data  ## run the training pipeline locally (kfp.local, one process a step)
	$(BIN)/creditrisk pipeline run training --config $(CONFIG)

serve: install  ## serve @champion locally: KServe transformer :8080 -> predictor :8085
	$(BIN)/creditrisk serve

CHAMPION = $$($(PY) -c "from creditrisk.settings import get_settings; print(get_settings().champion_uri)")

bench: install  ## serving benchmark vs the stock KServe chain (@champion; wrk if installed)
	$(PY) benchmarks/serving_bench.py --model_dir $(CHAMPION)

images: install  ## build the serving and training images (names from creditrisk.settings)
	PY=$(PY) scripts/build-images.sh $(IMAGES_ARGS)

bench-hostile: install  ## 12,000 hostile requests against both servers, totals by status class (target: 0 5xx)
	$(PY) benchmarks/hostile_bench.py --model_dir $(CHAMPION)

bench-batch: install  ## scale-out batch scoring: 1,000,000 synthetic clients, 4 shards (kfp.local)
	$(PY) benchmarks/batch_scale_bench.py --rows 1000000 --shards 4

system-deps:  ## Debian tools the tests run for real (prometheus, pushgateway, postgresql, chromium)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  bash scripts/install-system-deps.sh; \
	else \
	  echo "not root or no apt-get: install these yourself: see scripts/install-system-deps.sh"; \
	fi

tools:  ## offline verification tools (kubectl, helm, checkov, ...) in .venv-tools
	bash scripts/install-tools.sh

sync-monitoring: install  ## write the kustomize/Helm copies of monitoring/ rules and dashboards
	$(BIN)/creditrisk deploy sync-monitoring

dashboards: install  ## regenerate the Grafana dashboards (monitoring/dashboards) from code, then their copies
	$(BIN)/creditrisk monitor dashboards --out monitoring/dashboards
	$(BIN)/creditrisk deploy sync-monitoring

bench-monitoring: install  ## drift (27k, 300k rows) and performance job benchmark on the data file
	$(PY) benchmarks/monitoring_bench.py --data $(SHARED_DATA)

kind-up: install tools  ## the whole system on a local kind cluster (scripts/kind-up.sh)
	PATH="$(CURDIR)/.venv-tools/bin:$$PATH" bash scripts/kind-up.sh

kind-down:  ## delete the kind cluster
	bash scripts/kind-down.sh

test: install system-deps tools  ## the default test run: unit + integration (+ e2e), lint and types
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow" --durations=15 --junitxml=outputs/junit.xml

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

ci-cold:  ## CI as a new machine runs it: caches and images removed, fresh clone, .ci/run (PURGE_DEBS=1: Debian packages too)
	bash scripts/ci-cold.sh $$([ -n "$(PURGE_DEBS)" ] && echo --purge-debs)
