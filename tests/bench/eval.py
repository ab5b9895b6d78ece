"""`make eval`: retrieval quality of citeline (over HTTP) against the bm25s library, same text.

    python -m tests.bench.eval --data DIR [--out FILE]

Both systems index the paragraph text only (no title): citeline returns the title with each hit
but retrieves on the chunk text, so bm25s gets exactly the same text.
"""

from __future__ import annotations

import argparse
import json
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
    running_server,
    total_chunks,
    wait_all_settled,
)

BATCH = 500
SEARCH_LIMIT = 100
INDEX_TIMEOUT_S = 1800.0
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


def evaluate_citeline(data: Dataset) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="citeline-eval-") as tmp,
        running_server(Path(tmp) / "data") as server,
    ):
        indexed = index_corpus(server, data.corpus)
        run, seconds = citeline_run(server, data.queries)
    log(f"citeline: {len(run)} searches in {seconds:.1f} s")
    return {
        **evaluate(run, data.qrels),
        **indexed,
        "search_seconds": round(seconds, 2),
        "mean_search_ms": round(1000 * seconds / max(len(run), 1), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR dataset folder")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_dataset(args.data)
    log(f"{data.name}: {len(data.corpus)} docs, {len(data.queries)} queries")
    citeline = evaluate_citeline(data)
    run, bm25s_seconds = bm25s_run(data.corpus, data.queries)
    baseline = {**evaluate(run, data.qrels), "seconds": round(bm25s_seconds, 2)}
    result = {
        "dataset": data.name,
        "docs": len(data.corpus),
        "queries": len(data.queries),
        "judged_queries": sum(1 for q in data.qrels if q in data.queries),
        "indexed_text": "text only (no title), for both systems",
        "citeline": citeline,
        "bm25s": {
            **baseline,
            "version": bm25s.__version__,
            "setup": BM25S_SETUP,
        },
        "citeline_minus_bm25s_ndcg@10": round(citeline["ndcg@10"] - baseline["ndcg@10"], 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
