# Aftercare: `make demo` runs the local stack with a simulated fleet; `make test` runs every test.
# Both set up everything on a fresh machine (venv, Python packages, Mosquitto when missing).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CODE := functions shared devices infra
# aws-sam-cli pins boto3 differently from the project: it lives in a venv of its own.
SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION ?= 1.170.0

.PHONY: setup sam-setup demo up down test checks suite lint typecheck cfn-lint packaging unit integration e2e bench profile bench-dispatch bench-dispatch-local cost scale assist-eval clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || \
		{ (apt-get update -qq && apt-get install -y -qq mosquitto) || \
		  (sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto); }
	@test -x /usr/bin/chromium || \
		{ (apt-get update -qq && apt-get install -y -qq chromium) || \
		  (sudo apt-get update -qq && sudo apt-get install -y -qq chromium); }

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

sam-setup: $(SAM_VENV)/.installed

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

# Every function starts from its real `sam build` artifact in a bare python3.12 with only the
# runtime's SDK (infra/packaging.py); needs python3.12 on PATH or in pyenv.
packaging: setup sam-setup
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --region us-east-1 --template template.yaml
	AFTERCARE_REQUIRE_PACKAGING=1 $(BIN)/pytest tests/packaging -q

unit: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests/unit -q

integration: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests/integration -q

e2e: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests/e2e -q

# `make test` runs the checks (lint, typecheck, cfn-lint, packaging) in the background while the
# suite runs (the suite mostly waits on local stacks), prints the checks' output when both are
# done, and ends with the suite's closing line (the counts); any failing part fails `make test`.
# The suite runs on PYTEST_WORKERS pytest-xdist workers (3: the e2e groups mostly wait on their
# stacks, so a third worker overlaps their waits with CPU-bound unit tests), in the groups
# tests/conftest.py makes: one per integration/e2e module, one for the modules sharing the e2e
# local stack, the longest first.
PYTEST_WORKERS ?= 3
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder
PYTEST_ARGS ?=  # e.g. make test PYTEST_ARGS=--durations=30
LOGS := .aftercare

test: setup sam-setup
	@mkdir -p $(LOGS)
	@$(MAKE) --no-print-directory checks > $(LOGS)/checks.log 2>&1 & checks=$$!; \
	{ $(MAKE) --no-print-directory suite; echo $$? > $(LOGS)/suite.rc; } 2>&1 | tee $(LOGS)/suite.log; \
	wait $$checks; checks_rc=$$?; suite_rc=$$(cat $(LOGS)/suite.rc); \
	echo "---- lint, typecheck, cfn-lint, packaging: exit $$checks_rc ----"; cat $(LOGS)/checks.log; \
	echo "---- suite: exit $$suite_rc ----"; grep -E " in [0-9.]+s" $(LOGS)/suite.log | tail -n 1; \
	[ "$$suite_rc" = 0 ] && [ "$$checks_rc" = 0 ]

checks: lint typecheck cfn-lint packaging

# The project's bytecode is written first: with PYTHONDONTWRITEBYTECODE set (as on the shared
# machine) every process (pytest workers, each local stack's ~28 children, CLI runs) compiled the
# sources it imports again, ~1.7 s of CPU per stack start; compileall takes under a second.
suite: setup
	$(BIN)/python -m compileall -q $(CODE) tests > /dev/null
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/pytest tests -q --ignore=tests/packaging $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# Benchmark harness (not a test): the local stack under open-loop fault load, DynamoDB units per
# fault, moto's ceiling and cold starts; prints a table and writes bench/results.json (README,
# "Performance and cost"). A quick run: make bench BENCH_SECONDS=5 BENCH_RATES=5,20
BENCH_RATES ?= 5,20,50,100
BENCH_SECONDS ?= 10
BENCH_SEARCH_S ?= 90
BENCH_COLDSTART_RUNS ?= 3
BENCH_NOTE ?=
BENCH_SQS_CONCURRENCY ?=
bench: setup sam-setup
	BENCH_RATES=$(BENCH_RATES) BENCH_SECONDS=$(BENCH_SECONDS) BENCH_SEARCH_S=$(BENCH_SEARCH_S) \
	BENCH_COLDSTART_RUNS=$(BENCH_COLDSTART_RUNS) BENCH_NOTE="$(BENCH_NOTE)" \
	BENCH_SQS_CONCURRENCY="$(BENCH_SQS_CONCURRENCY)" \
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/python -m infra.bench.run

# Whole-stack CPU profile (not a test): the bench's stack with every process under cProfile, one
# fixed-rate phase; writes and prints bench/profile.md (README, "Performance and cost").
PROFILE_RATE ?= 20
PROFILE_SECONDS ?= 20
profile: setup
	$(BIN)/python -m compileall -q $(CODE) > /dev/null
	PROFILE_RATE=$(PROFILE_RATE) PROFILE_SECONDS=$(PROFILE_SECONDS) \
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/python -m infra.bench.profile

# Dispatch quality (not a test): a seeded synthetic day of 1,000 visits across 100 engineers,
# greedy insertion vs greedy + local search; prints a table and writes bench/dispatch.json.
bench-dispatch: setup
	$(BIN)/python -m infra.bench.dispatch

# One new ticket's dispatch on the local stack (own stack, 40 rounds): p50/p95/max from the
# ticket write to the Dispatcher's decision; writes bench/dispatch_local.json.
bench-dispatch-local: setup
	AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled $(BIN)/python -m infra.bench.dispatch_local 40

# The AWS bill per million faults / notifications from bench/results.json and bench/prices.json.
cost: setup
	$(BIN)/python -m infra.bench.cost

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .aftercare .pytest_cache .mypy_cache .ruff_cache *.egg-info

# The scale model (no AWS calls): a fleet, its faults, a 50,000-device storm, telemetry and
# notifications minute by minute against the account's quotas; README "Scale model".
# e.g. make scale SCALE_ARGS="--devices 10000000 --design incident"
SCALE_ARGS ?= --devices 1000000
scale: setup
	$(BIN)/python -m infra.scale $(SCALE_ARGS)

# The answer service's accuracy on the committed question set (tests/data/assist_eval.yaml):
# top-1/top-3 per language, the index build time; the top-1 misses on stderr.
assist-eval: setup sam-setup
	$(BIN)/python -m infra.assist_eval
	@echo "cold start of the function that answers POST /assist (ServiceApiFunction), vs bare boto3:"
	$(BIN)/python -m infra.coldstart --runs 5 --clock cpu --functions ServiceApiFunction
