# Every target bootstraps itself on a fresh Debian/Ubuntu machine with Python 3.11+ and pip:
# uv is installed from PyPI into .tools/ if it is not on PATH, then the locked environment
# (.venv, from uv.lock) is created. Nothing needs installing by hand.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.noria-synced

export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export UV_LINK_MODE ?= copy
# OpenMP threads that spin while waiting slow LightGBM down badly on a busy 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help demo test lint bench fmt docs clean docker-test faults faults-ci release

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV):
	@echo "-- installing uv into .tools/ (it is not on PATH)"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools uv

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on CI machines) nothing is ever cached,
# and every `noria` or server process a test starts would compile MLflow, Feast and pandas again
# (about 7 s each); compiling the locked environment once costs about 30 s.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --group dev --compile-bytecode
	@touch $@

demo: $(STAMP) ## run the whole loop on embedded defaults (in ./demo)
	$(BIN)/noria demo --dir demo

# Test files run in TEST_WORKERS processes (pytest-xdist), a file's tests in one process so that
# its module fixtures (servers, trained models) start once; most tests wait on the services
# they start, so two processes finish the suite in about two thirds of the time on 2 cores.
TEST_WORKERS ?= 2

test: $(STAMP) ## run the test suite (the fault suite's fast cases included; `make faults` runs all)
	$(BIN)/python -m compileall -q -j 0 src
	$(BIN)/pytest -m "not (faults and slow)" -n $(TEST_WORKERS) --dist loadfile --durations=25

FAULT_RESULTS := $(CURDIR)/tests/faults/.results/results.jsonl

faults: $(STAMP) ## the whole fault-injection suite (10-minute load case), then docs/reliability.md
	rm -f $(FAULT_RESULTS)
	FAULTS_FULL=1 $(BIN)/pytest -p no:cacheprovider tests/faults; status=$$?; \
	  $(BIN)/python scripts/reliability_report.py --command "make faults" && exit $$status

faults-ci: $(STAMP) ## the fault suite's long cases (after `make test`; the load case runs 60 s), two files at a time
	$(BIN)/pytest -p no:cacheprovider -m "faults and slow" -n $(TEST_WORKERS) --dist loadfile tests/faults

lint: $(STAMP) ## ruff, mypy, import contracts, actionlint, CLI docs, config schema, Dockerfiles, k8s manifests, Terraform, checkov
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/actionlint .github/workflows/*.yml
	$(BIN)/python scripts/cli_docs.py --check
	$(BIN)/python scripts/config_docs.py --check
	$(BIN)/python scripts/config_schema.py --check
	$(BIN)/python scripts/features_docs.py --check
	$(BIN)/python scripts/model_choice.py --check
	$(BIN)/python scripts/bench_table.py --check
	UV=$(UV) $(BIN)/python scripts/check_deploy.py

docker-test: $(STAMP) ## build the serving + pipeline images, run them read-only, serve a prepared project (DOCKER_TEST_PROJECT=DIR|none)
	scripts/docker_test.sh

bench: $(STAMP) ## run the benchmarks side by side with their peers (results in benchmarks/results, table in README; BENCH="serving ..." for some)
	$(BIN)/python benchmarks/run.py $(BENCH)
	$(BIN)/python scripts/bench_table.py

fmt: $(STAMP) ## format and auto-fix
	$(BIN)/ruff format src tests benchmarks examples scripts
	$(BIN)/ruff check --fix src tests benchmarks examples scripts

docs: $(STAMP) ## regenerate docs/cli.md, the config key reference and schemas/noria.schema.json, the flights feature tables, model_choice.md's figures (from docs/data/model_choice.json), openapi.json
	$(BIN)/python scripts/cli_docs.py
	$(BIN)/python scripts/config_docs.py
	$(BIN)/python scripts/config_schema.py
	$(BIN)/python scripts/features_docs.py
	$(BIN)/python scripts/model_choice.py
	$(BIN)/python -m noria.serving.openapi

# VERSION=X.Y.Z or PART=patch|minor|major; DRY_RUN=1 shows the plan and changes nothing. Plain python3
# (standard library only): no environment needed. Push with `git push --follow-tags` afterwards.
release: ## cut a release from a clean tree: CHANGELOG section, version, notes in dist/, commit, tag vX.Y.Z
	$(PYTHON) scripts/release.py $(if $(VERSION),--version $(VERSION)) $(if $(PART),--part $(PART)) $(if $(DRY_RUN),--dry-run)

clean: ## remove the environment, caches and the demo project
	rm -rf $(VENV) .tools demo .pytest_cache .mypy_cache .ruff_cache
