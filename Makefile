# Two entry points a newcomer needs: `make check` and `make test`.
# Both set up a virtual environment on first use (Python 3.11, Java 11+).

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
RS     := $(VENV)/bin/resumespec

.PHONY: setup check check-deep test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 (or run: make PYTHON=python3)"; exit 3; }
	@command -v java >/dev/null 2>&1 || { echo "error: java not found on PATH; TLC needs Java 11+ (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"; exit 3; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

## Model-check the quick set of models and print the results table.
check: setup
	$(RS) check

## Model-check the deep set too (tens of minutes).
check-deep: setup
	$(RS) check --deep

## Run the test suite (pytest exits 5 when it collects nothing; that fails too).
test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info states
