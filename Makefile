# targeting — `make help` lists the targets. `make demo` and `make test` bootstrap a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export OMP_WAIT_POLICY := passive

.DEFAULT_GOAL := help
.PHONY: help venv spark browser demo test test-fast strip lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# --compile-bytecode: these machines set PYTHONDONTWRITEBYTECODE, so without .pyc files written at install
# every command would compile mlflow, sklearn and lightgbm again
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the locked dependencies and the package

# the optional Spark engine (pyspark, the `spark` extra) for its test; Java 17 comes with the machine.
# --no-cache: pyspark is a large sdist that uv builds anew on every install without reusing its cached
# build, so the cache would only grow by one build per install
SPARK_STAMP := $(VENV)/.installed-spark
$(SPARK_STAMP): $(STAMP) requirements-spark.lock
	$(BIN)/uv pip install --quiet --no-cache --compile-bytecode --python $(BIN)/python -r requirements-spark.lock
	touch $(SPARK_STAMP)

spark: $(SPARK_STAMP) ## install the optional Spark engine (pyspark) into .venv

# the review report is checked in a real browser: Debian's chromium (installed once, as root or with sudo)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium > /dev/null

browser: $(CHROMIUM) ## install headless Chromium (Debian package) for the report test

demo: $(STAMP) ## run the main job end to end on the simulated world
	bash scripts/demo.sh

test: $(STAMP) $(SPARK_STAMP) $(CHROMIUM) ## run the whole test suite (slow tests included)
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## run the tests without the slow end-to-end ones
	$(BIN)/python -m pytest -m "not slow" --ignore=notebooks

strip: $(STAMP) ## remove outputs from the notebooks before committing them
	$(BIN)/nbstripout notebooks/*.ipynb

lint: $(STAMP) ## ruff
	$(BIN)/ruff check src tests benchmarks notebooks

bench: $(SPARK_STAMP) ## performance benchmarks (prints tables; the spark one needs the spark extra)
	$(BIN)/python -m benchmarks

lock: ## re-resolve requirements.lock (and requirements-spark.lock, with the spark extra) from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra spark --python-version 3.11 -o requirements-spark.lock

clean: ## remove the venv and generated data
	rm -rf $(VENV) data/raw data/interim data/processed mlruns mlflow.db
