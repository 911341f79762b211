# Two entry points: `make compare` (the main job) and `make test` (the test suite).
# Each builds the virtual environment .venv on first use, with pinned dependencies.
# `make test` is deterministic with or without CI in the environment: hypothesis loads a
# derandomized profile without example database (tests/conftest.py).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv compare test test-full lint bench paper mutate clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

compare: $(STAMP)
	$(BIN)/python -m validation.compare $(ARGS)

test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest $(ARGS)

test-full: $(STAMP)
	$(BIN)/python -m pytest --full $(ARGS)

# Mutation testing (not part of CI): mutmut mutates the modules listed in setup.cfg
# [mutmut], runs the fast tests that reach each mutant, and mutation/results.md gets the
# score per module and the mutants left alive.
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[mutate]'
	$(BIN)/python -m mutmut run --max-children 2 $(ARGS)
	$(BIN)/python -m mutation.report

lint: $(STAMP)
	$(BIN)/python -m ruff check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.simulate_throughput $(ARGS)

paper: $(STAMP)
	$(BIN)/python -m paper $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis mutants
