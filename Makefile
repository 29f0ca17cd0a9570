# The two commands of the quick start: `make run` and `make test`. Both set up
# everything they need on a fresh machine (a virtualenv in .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench-overhead clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,classify-export,local,learn]'
	$(BIN)/flywheel classifier export
	$(BIN)/flywheel local-model prepare
	touch $(STAMP)

install: $(STAMP)

## run the whole system on embedded defaults (gateway + local model worker + mock upstream)
run: $(STAMP)
	$(BIN)/flywheel up

## run the test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gateway local_worker learner benchmarks tests
	$(BIN)/mypy gateway local_worker benchmarks

bench-overhead: $(STAMP)
	$(BIN)/flywheel bench overhead

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
