# make demo  - the whole story offline (fake Scalingo API on loopback, messages on the console); installs the
#              runtime only (requirements.txt) into .venv
# make test  - everything CI checks: ruff, mypy, template checks (cfn-lint, sam validate, sam build), pytest on
#              Python 3.11 (.venv) and 3.13 (.venv-3.13, the Lambda's)
# make unit  - the unit tests alone (seconds)
# make lock  - regenerates the locks (hashes) from pyproject.toml, requirements-dev.in and layers/*.in;
#              LOCK_ARGS=--upgrade (or --upgrade-package NAME) moves pins forward
# make bench - the benchmarks: 200, 2,000 and 10,000 databases per token and 2,000 apps of one database,
#              each check a new process, cold start then a steady day (about 70 minutes), a storm of 300
#              failures and how soon an alert reaches Slack in a big fleet (about 8 minutes), verifying a 1 GB
#              archive, and cold-start import times
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_313 := .venv-3.13
PIP := -m pip install --quiet --disable-pip-version-check
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0

# sam build needs a real python3.13 first on PATH (not a pyenv shim): find its bin directory.
PY313_BIN := $(shell v=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | tail -n 1); \
	if [ -n "$$v" ]; then echo "$$(pyenv prefix $$v)/bin"; \
	elif command -v python3.13 >/dev/null 2>&1; then \
	  dirname "$$(python3.13 -c 'import os,sys; print(os.path.realpath(sys.executable))')"; fi)

# The Lambda's bytecode: unchecked-hash .pyc are used as they are (Lambda cannot write __pycache__, and zip
# timestamps would make timestamp-based .pyc look stale). Compiled by python3.13, the runtime's version.
PY313 = $(PY313_BIN)/python3
COMPILEALL = -m compileall -q -j 0 --invalidation-mode unchecked-hash
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
LAYER_PIP = --quiet --disable-pip-version-check --no-compile --only-binary=:all: \
	--platform manylinux2014_aarch64 --implementation cp --python-version 3.13

.PHONY: all demo test lint typecheck template deploy pytest bench clean deps build-BackupMonitorFunction \
	build-DependenciesLayer

all: test

# The runtime (what `pip install scalingo-backup-monitor` brings, from its lock) and the project itself: enough
# for `make demo`. The locks carry every version with its hashes; the project goes in without dependencies.
$(BIN)/.runtime: pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP) --require-hashes -r requirements.txt
	$(BIN)/python $(PIP) --no-deps -e .
	touch $@

# The development lock on top: the `aws` extra, the test tools, linters and type checkers.
$(BIN)/.installed: $(BIN)/.runtime requirements-dev.txt
	$(BIN)/python $(PIP) --require-hashes -r requirements-dev.txt
	touch $@

# The Lambda's Python, for the tests (make pytest-3.13) and for locking the layer (make lock).
$(VENV_313)/.installed: pyproject.toml requirements-dev.txt
	@test -n "$(PY313_BIN)" || { echo "pytest-3.13 needs python3.13 (pyenv install 3.13 or apt python3.13)"; exit 1; }
	test -x $(VENV_313)/bin/python || "$(PY313)" -m venv $(VENV_313)
	$(VENV_313)/bin/python $(PIP) --require-hashes -r requirements-dev.txt
	$(VENV_313)/bin/python $(PIP) --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The SAM CLI and checkov have locks of their own (tools/requirements-*.txt, hashes): each pins what it needs
# (checkov an older boto3 than ours), so each lives in its own virtualenv. --no-deps: a lock is complete, and pip's
# hash mode cannot match `boto3[crt]==X` in the lock with a plain `boto3` requirement of another package.
$(SAM_VENV)/.installed: tools/requirements-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r $<
	touch $@

deps: $(BIN)/.installed node_modules/.installed $(SAM_VENV)/.installed

demo: $(BIN)/.runtime
	$(BIN)/backup-monitor demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/.installed: tools/requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r $<
	touch $@

# checkov reads template.yaml itself (SAM resources included); each skip is in the template with its reason.
# --skip-download: no call to Prisma Cloud (offline, same result).
template: $(BIN)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	@test -n "$(PY313_BIN)" || { echo "sam build needs python3.13 (pyenv install 3.13 or apt python3.13)"; exit 1; }
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --template template.yaml
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download
	PATH="$(PY313_BIN):$$PATH" $(SAM) build --template template.yaml --build-dir .aws-sam/build

# The first deploy and the next ones: the secrets the stack reads must be in SSM, in its region (else say which
# and how to store them: backup-monitor secrets put), then build and deploy with samconfig.toml.
deploy: $(BIN)/.installed $(SAM_VENV)/.installed
	@test -n "$(PY313_BIN)" || { echo "sam build needs python3.13 (pyenv install 3.13 or apt python3.13)"; exit 1; }
	$(BIN)/backup-monitor secrets check
	PATH="$(PY313_BIN):$$PATH" $(SAM) build --template template.yaml --build-dir .aws-sam/build
	$(SAM) deploy

pytest: $(BIN)/.installed node_modules/.installed
	$(BIN)/pytest

.PHONY: unit pytest-3.13 lock docs
unit: $(BIN)/.installed
	$(BIN)/pytest -q tests/unit

# docs/configuration.md from the list of variables (variables.py) and template.yaml; a unit test fails when stale.
docs: $(BIN)/.installed
	$(BIN)/python tools/config_doc.py

pytest-3.13: $(VENV_313)/.installed node_modules/.installed
	$(VENV_313)/bin/pytest

test: lint typecheck template pytest pytest-3.13

# Each lock from its sources, keeping the pins it has unless LOCK_ARGS says otherwise. The layer's first (with
# the Lambda's Python 3.13); the runtime's follows its versions, the development lock the runtime's.
COMPILE = -m piptools compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	--no-emit-find-links $(LOCK_ARGS)
lock: $(BIN)/.installed $(VENV_313)/.installed
	$(VENV_313)/bin/python $(COMPILE) -o layers/requirements.txt layers/requirements.in
	$(VENV_313)/bin/python $(COMPILE) --unsafe-package botocore -o layers/requirements-no-deps.compiled.txt \
		layers/requirements-no-deps.in
	$(BIN)/python layers/keep_pinned.py layers/requirements-no-deps.in layers/requirements-no-deps.compiled.txt \
		> layers/requirements-no-deps.txt
	rm layers/requirements-no-deps.compiled.txt
	$(BIN)/python $(COMPILE) --constraint layers/requirements.txt -o requirements.txt pyproject.toml
	$(BIN)/python $(COMPILE) --extra aws -o requirements-dev.txt pyproject.toml requirements-dev.in
	$(BIN)/python $(COMPILE) --no-strip-extras -o tools/requirements-sam.txt tools/requirements-sam.in
	$(BIN)/python $(COMPILE) -o tools/requirements-checkov.txt tools/requirements-checkov.in

bench: $(BIN)/.installed node_modules/.installed template  # cold_start.py measures the sam build output
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/storm_bench.py
	$(BIN)/python bench/archive_bench.py
	$(BIN)/python bench/endpoint_bench.py
	$(BIN)/python bench/cold_start.py --python "$(PY313)" --build-dir .aws-sam/build

# Called by `sam build` (BuildMethod: makefile, ContextPath: .) with ARTIFACTS_DIR set.
build-BackupMonitorFunction:
	@test -n "$(PY313_BIN)" || { echo "the build needs python3.13"; exit 1; }
	cp -R "$(ROOT)/functions/backup_monitor/." "$(ARTIFACTS_DIR)/"
	rm -rf "$(ARTIFACTS_DIR)"/*.egg-info
	# The fake Scalingo and the demo are for `backup-monitor demo`, the tests and the benchmarks: not shipped.
	rm -rf "$(ARTIFACTS_DIR)/backup_monitor/fakes" "$(ARTIFACTS_DIR)/backup_monitor/demo.py"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
	"$(PY313)" $(COMPILEALL) "$(ARTIFACTS_DIR)"

# The Slack interactivity function (template.yaml's InteractionsFunction): the same code, built the same way.
build-InteractionsFunction: build-BackupMonitorFunction

# The runtime's boto3/botocore serve: aws-xray-sdk and wrapt are installed without their dependencies, so
# the layer carries no second botocore (25 MB) shadowing the runtime's. Both files are locks (make lock):
# every package pinned with the hashes of its files, the arm64 wheels among them.
build-DependenciesLayer:
	@test -n "$(PY313_BIN)" || { echo "the build needs python3.13"; exit 1; }
	"$(PY313)" -m pip install $(LAYER_PIP) --require-hashes --target "$(ARTIFACTS_DIR)/python" \
		-r "$(ROOT)/layers/requirements.txt"
	"$(PY313)" -m pip install $(LAYER_PIP) --require-hashes --no-deps --target "$(ARTIFACTS_DIR)/python" \
		-r "$(ROOT)/layers/requirements-no-deps.txt"
	"$(PY313)" $(COMPILEALL) "$(ARTIFACTS_DIR)/python"

clean:
	rm -rf .aws-sam .mypy_cache .pytest_cache .ruff_cache build *.egg-info
