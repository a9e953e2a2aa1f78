# Two entry points a newcomer needs: `make check` and `make test`.
# Both first run scripts/setup-system.sh, which installs the system packages
# this machine lacks when run as root (otherwise it prints the one command to
# run and stops), then set up a virtual environment on first use.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
RS     := $(VENV)/bin/resumespec

.PHONY: setup system system-test check check-deep test lint bench clean

setup: system $(VENV)/.installed

## System packages: Python 3.11 + venv, Java 11+, make (and for the tests
## Chromium and libibverbs1). Installs them when run as root.
system:
	@PYTHON=$(PYTHON) scripts/setup-system.sh check

system-test:
	@PYTHON=$(PYTHON) scripts/setup-system.sh test

$(VENV)/.installed: pyproject.toml | system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test,lint]'
	@touch $@

## Model-check the quick set of models and print the results table.
check: setup
	$(RS) check

## Model-check the deep set too (tens of minutes).
check-deep: setup
	$(RS) check --deep

## Run the test suite (pytest exits 5 when it collects nothing; that fails too).
test: system-test setup
	$(PY) -m pytest -q

## ruff (lint) and mypy (types, configured in pyproject.toml). mypy reads the
## modules under their installed names from a tree of links in build/typecheck.
TYPECHECK := build/typecheck/resumespec

lint: setup
	$(VENV)/bin/ruff check .
	@rm -rf build/typecheck && mkdir -p $(TYPECHECK)
	@for f in resumespec/*; do ln -s "$(CURDIR)/$$f" $(TYPECHECK)/; done
	@for d in spec reference conformance; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/$$d; done
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info states
