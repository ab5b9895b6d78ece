"""Ingestion beside LlamaIndex's `IngestionPipeline` into Qdrant, in one run, on the same documents
with the same cheap deterministic embedder (issue 12: citeline at least 2× as fast).

    python -m tests.bench.llamaindex [--data DIR] [--docs 5000] [--modes bm25,hybrid] [--out FILE]

The documents: BEIR nfcorpus (3,633 docs; default ../shared/data/nfcorpus beside the repo). No
5k-doc BEIR corpus is on disk, so to reach --docs (default 5,000) the corpus is taken again from
its start as distinct copies: id suffixed "-copy1", " (copy 1)" appended to the text (then
copy 2, ... for larger --docs).

citeline is measured as a user meets it: a real server subprocess on a fresh data dir, the
documents POSTed to /v1/documents/batch in batches from a few connections, the clock running
from the first POST until every job has completed (GET /readyz). LlamaIndex runs in a child
process (tests/bench/llamaindex_child.py) in the bench's own virtualenv, made on first use under
~/.cache/citeline-bench/llamaindex-venv with `pip install llama-index-core
llama-index-vector-stores-qdrant` (never a citeline dependency): SentenceSplitter(chunk_size=512,
chunk_overlap=64), tiktoken tokens like citeline's defaults, then the embedder, then
QdrantVectorStore on a local-mode QdrantClient(path=...); clocked around making the Documents
and `pipeline.run`.

Two modes, each with both sides:
  hybrid  citeline embeds through the OpenAI-compatible stub (384-d deterministic vectors, a
          subprocess) and also computes BM25 sparse vectors; LlamaIndex embeds through the same
          stub, 256 texts a request like citeline.
  bm25    citeline has no dense embedder (BM25 sparse vectors only); LlamaIndex needs a dense
          vector, so it hashes each chunk in process into a 384-d one (no HTTP).
Prints one JSON object (each side's chunks, seconds, docs/s and chunks/s, the ratio of docs/s
with the 2× target beside it, the 1-minute load average at start and end) and exits 0 whatever
the figures: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.data import CorpusDoc, load_dataset
from tests.bench.ingest import BatchSender
from tests.bench.server import (
    REPO_ROOT,
    log,
    report,
    running_server,
    total_chunks,
    wait_all_settled,
)
from tests.stubs.openai_stub import spawn_stub

DIM = 384
TARGET_RATIO = 2.0
PACKAGES = ("llama-index-core", "llama-index-vector-stores-qdrant")
CHILD = Path(__file__).with_name("llamaindex_child.py")
DEFAULT_VENV = Path.home() / ".cache" / "citeline-bench" / "llamaindex-venv"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared/data/nfcorpus")
    p.add_argument("--docs", type=int, default=5000)
    p.add_argument("--modes", default="bm25,hybrid", help="comma-separated: bm25, hybrid")
    p.add_argument("--batch-size", type=int, default=500, help="documents per citeline POST")
    p.add_argument("--connections", type=int, default=2)
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="LlamaIndex's virtualenv")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if unknown := set(args.modes.split(",")) - {"bm25", "hybrid"}:
        p.error(f"unknown modes: {', '.join(sorted(unknown))}")
    return args


def corpus_docs(corpus: list[CorpusDoc], n: int) -> list[dict[str, Any]]:
    """The first `n` documents of the corpus, taken again from its start (as distinct copies)."""
    docs: list[dict[str, Any]] = []
    copy = 0
    while len(docs) < n:
        tag = f" (copy {copy})" if copy else ""
        for d in corpus[: n - len(docs)]:
            doc_id = f"{d.doc_id}-copy{copy}" if copy else d.doc_id
            docs.append({"id": doc_id, "title": d.title, "text": d.text + tag})
        copy += 1
    return docs


def llamaindex_python(venv: Path) -> Path:
    """The virtualenv's interpreter; on first use the venv is made and the packages installed."""
    python, ready = venv / "bin" / "python", venv / ".citeline-bench-ready"
    if not ready.exists():
        log(f"setting up {venv}: pip install {' '.join(PACKAGES)} (minutes, once)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *PACKAGES], check=True, stdout=sys.stderr)
        ready.touch()
    return python


def rates(docs: int, chunks: int, seconds: float, cpu: float | None) -> dict[str, Any]:
    return {
        "docs": docs,
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "docs_per_s": round(docs / seconds, 1),
        "chunks_per_s": round(chunks / seconds, 1),
        "cpu_seconds": None if cpu is None else round(cpu, 1),
    }


def run_citeline(
    docs: list[dict[str, Any]], env: dict[str, str], data_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    with running_server(data_dir, env) as server, server.client() as client:
        cpu_before = server.cpu_seconds() or 0.0
        started = time.perf_counter()
        BatchSender(server.url, args.connections).send_all(docs, args.batch_size)
        counts = wait_all_settled(client, len(docs), timeout=3600)
        seconds = time.perf_counter() - started
        cpu = (server.cpu_seconds() or 0.0) - cpu_before
        out = rates(len(docs), total_chunks(client), seconds, cpu)
    log(f"citeline: {out['docs_per_s']} docs/s, {out['chunks']} chunks; jobs {counts}")
    return {**out, "jobs_failed": counts.get("failed", 0)}


def run_llamaindex(
    python: Path, docs_file: Path, n_docs: int, store: Path, embed_url: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    cmd = [str(python), "-I", str(CHILD), "--docs", str(docs_file), "--store", str(store)]
    cmd += ["--dimension", str(DIM), *(["--embed-url", embed_url] if embed_url else [])]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    child = json.loads(done.stdout)
    out = rates(n_docs, child["chunks"], child["seconds"], child["cpu_seconds"])
    log(f"llamaindex: {out['docs_per_s']} docs/s, {out['chunks']} chunks")
    return out, child["versions"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    docs = corpus_docs(load_dataset(args.data).corpus, args.docs)
    python = llamaindex_python(args.venv)
    result: dict[str, Any] = {"corpus": args.data.resolve().name, "docs": len(docs)}
    load = {"start": round(os.getloadavg()[0], 2)}
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="citeline-llamaindex-") as tmp:
        docs_file = Path(tmp) / "docs.jsonl"
        docs_file.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        for mode in args.modes.split(","):
            with contextlib.ExitStack() as stack:
                env, url = {"CITELINE_MAX_QUEUED_JOBS": str(len(docs) + 1000)}, None
                if mode == "hybrid":
                    url = stack.enter_context(spawn_stub("--dimension", str(DIM))).base_url
                    env |= {"CITELINE_EMBEDDING_BASE_URL": url,
                            "CITELINE_EMBEDDING_MODEL": "stub-embed",
                            "CITELINE_EMBEDDING_DIMENSION": str(DIM)}  # fmt: skip
                log(f"{mode}: citeline, {len(docs)} documents")
                ours = run_citeline(docs, env, Path(tmp) / mode / "citeline", args)
                log(f"{mode}: llamaindex, {len(docs)} documents")
                theirs, versions = run_llamaindex(
                    python, docs_file, len(docs), Path(tmp) / mode / "qdrant", url
                )
            ratio = round(theirs["seconds"] / ours["seconds"], 2)  # docs/s: same documents
            result[mode] = {"citeline": ours, "llamaindex": theirs, "ratio_docs_per_s": ratio,
                            "target_ratio": TARGET_RATIO, "met": ratio >= TARGET_RATIO}  # fmt: skip
    result["llamaindex_versions"] = versions
    load["end"] = round(os.getloadavg()[0], 2)
    result["load_avg_1m"] = load
    result["cpu_cores"] = os.cpu_count()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    return report(run(args), args.out, started)


if __name__ == "__main__":
    sys.exit(main())
