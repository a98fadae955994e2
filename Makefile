# Two commands: `make run` serves the embedded default with demo data,
# `make test` runs lint and the whole suite. Both set up .venv themselves.
# `make loadtest` (or `make soak`, 10 minutes) writes docs/loadtest/ from a run on loopback;
# it needs nginx and openssl (apt-get install nginx-light openssl) and a PostgreSQL server
# on 127.0.0.1:5432. ARGS passes options: make loadtest ARGS="--seconds 120".
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench loadtest soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/gateway serve --demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/s3_streaming.py
	$(BIN)/python benchmarks/deep_paging.py
	$(BIN)/python benchmarks/hot_path.py
	$(BIN)/python benchmarks/request_cost.py

$(VENV)/.loadtest-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,loadtest]'
	touch $@ $(VENV)/.dev-installed $(VENV)/.run-installed

loadtest: $(VENV)/.loadtest-installed
	$(BIN)/python -m benchmarks.loadtest $(ARGS)

soak: $(VENV)/.loadtest-installed
	$(BIN)/python -m benchmarks.loadtest --soak $(ARGS)

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
