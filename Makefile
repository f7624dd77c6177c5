# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest validate bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/symbolic_regression.py --out out

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check ppl inference tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile --durations=30

# the slow tier; each full-size part writes out/validate/<part>.json, rendered into
# docs/validation.md's results section whatever the outcome (the exit status is pytest's)
validate: $(STAMP)
	$(BIN)/python -m pytest -q -m slow --durations=30; status=$$?; \
	$(BIN)/python -m tests.validate.record; exit $$status

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.prior_costs --write docs/benchmarks.md
	$(BIN)/python -m benchmarks.mcmc_throughput --write docs/benchmarks.md
	$(BIN)/python -m benchmarks.nuts_overhead --write docs/benchmarks.md
	$(BIN)/python -m benchmarks.nguyen --seeds 3 --budget 20 --jobs 2 --write docs/benchmarks.md

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build
