# citeline — `make run` serves, `make test` tests; both set up .venv on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/squad2-dev

.PHONY: run worker test lint fmt bench bench-queue eval clean

$(VENV)/.run: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "citeline needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.run
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(VENV)/.run
	$(PY) -m service

# One arq indexing worker (scaled-out mode): needs CITELINE_QUEUE=arq, CITELINE_REDIS_URL (and
# CITELINE_QDRANT_URL).
worker: $(VENV)/.run
	$(PY) -m workers

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.dev
	$(PY) -m tests.bench.run --data $(DATA)
	$(PY) -m tests.bench.encoders
	$(PY) -m tests.bench.queue --data $(DATA)
	$(PY) -m tests.bench.ttft --data $(DATA)
	$(PY) -m tests.bench.overhead
	$(PY) -m tests.bench.load --data $(DATA)
	$(PY) -m tests.bench.backup --data $(DATA)

# arq workers (1 and 2) against the inline queue; needs redis-server on PATH.
bench-queue: $(VENV)/.dev
	$(PY) -m tests.bench.queue --data $(DATA)

eval: $(VENV)/.dev
	$(PY) -m tests.bench.eval --data $(DATA) $(if $(MODES),--modes $(MODES))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
