# citeline — `make run` serves, `make test` tests; both set up .venv on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data/squad2-dev
# Every package comes from a lock, pinned with hashes (`make lock` rewrites them from
# pyproject.toml; tests/unit/test_lockfile.py fails while they disagree).
PIP_LOCK := requirements/pip.lock
RUN_LOCK := requirements/runtime.lock
DEV_LOCK := requirements/dev.lock
PIP_LOCKED := $(PY) -m pip install --quiet --require-hashes --only-binary :all: -r
PDF    ?= ../bench-data/debian-policy.pdf

.PHONY: run worker test lint fmt lock bench bench-queue bench-files bench-llamaindex eval clean

$(VENV)/.run: pyproject.toml $(PIP_LOCK) $(RUN_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "citeline needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) $(PIP_LOCK)
	$(PIP_LOCKED) $(RUN_LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $@

$(VENV)/.dev: $(VENV)/.run $(DEV_LOCK)
	$(PIP_LOCKED) $(DEV_LOCK)
	$(PY) -m pip check
	@touch $@

lock: $(VENV)/.dev
	$(PY) -m tests.lockfile

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
	$(PY) -m tests.bench.auth --data $(DATA)
	$(PY) -m tests.bench.files --pdf $(PDF)
	$(PY) -m tests.bench.llamaindex
	$(PY) -m tests.bench.local_encoder

# arq workers (1 and 2) against the inline queue; needs redis-server on PATH.
bench-queue: $(VENV)/.dev
	$(PY) -m tests.bench.queue --data $(DATA)

# PDF parse speed, upload-to-searchable, parser memory, 1,000 small files (PDF=path/to.pdf).
bench-files: $(VENV)/.dev
	$(PY) -m tests.bench.files --pdf $(PDF)

# Ingestion beside LlamaIndex's IngestionPipeline into Qdrant, 5,000 nfcorpus documents (its
# packages go into a venv of their own under ~/.cache/citeline-bench, made on first use).
bench-llamaindex: $(VENV)/.dev
	$(PY) -m tests.bench.llamaindex

# Retrieval quality beside bm25s on every BEIR folder, then the abstention protocol (both
# through the service: /v1/search and POST /v1/evaluations), then our BM25 encoder against
# qdrant-edge's native one.
EVAL_DATA ?= ../shared/data/squad2-dev ../shared/data/nfcorpus
eval: $(VENV)/.dev
	for d in $(EVAL_DATA); do $(PY) -m tests.bench.eval --data $$d $(if $(MODES),--modes $(MODES)) || exit 1; done
	$(PY) -m tests.bench.abstention --squad ../shared/data/squad2-dev --nfcorpus ../shared/data/nfcorpus
	$(PY) -m tests.bench.abstention --squad ../shared/data/squad2-dev --nfcorpus ../shared/data/nfcorpus --env CITELINE_EMBEDDING_PROVIDER=local
	$(PY) -m tests.bench.multilingual
	$(PY) -m tests.bench.bm25_models $(foreach d,$(EVAL_DATA),--data $(d))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
