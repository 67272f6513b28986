# Aftercare: `make demo` runs the local stack with a simulated fleet; `make test` runs every test.
# Both set up everything on a fresh machine (venv, Python packages, Mosquitto when missing).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CODE := functions shared devices infra

.PHONY: setup demo up down test lint typecheck cfn-lint unit integration e2e clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
		{ (apt-get update -qq && apt-get install -y -qq mosquitto) || \
		  (sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto); }

demo: setup
	$(BIN)/aftercare demo

up: setup
	$(BIN)/aftercare local up

down:
	$(BIN)/aftercare local down

lint: setup
	$(BIN)/ruff check $(CODE) tests
	$(BIN)/ruff format --check $(CODE) tests

typecheck: setup
	$(BIN)/mypy $(CODE)

cfn-lint: setup
	$(BIN)/cfn-lint template.yaml

unit: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests/unit -q

integration: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests/integration -q

e2e: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests/e2e -q

test: lint typecheck cfn-lint
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests -q

clean:
	rm -rf $(VENV) .aftercare .pytest_cache .mypy_cache .ruff_cache *.egg-info
