"""Our BM25 encoder against qdrant-edge's native `Bm25` model: quality, speed, id stability.

    python -m tests.bench.bm25_models --data DIR [--data DIR ...] [--out FILE]

Both encoders' vectors are scored the same way (exact BM25 with IDF over the corpus, as the
store's IDF modifier computes it), so only the analysis (tokenizer, stopwords, stemmer) and
the document weights differ; bm25s is the reference. Speed: documents encoded per second, one
thread. Stability: the ids of one sample text from two fresh processes.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from service.embeddings.sparse import Bm25Encoder
from tests.bench.data import load_dataset
from tests.bench.metrics import evaluate
from tests.bench.server import log, report

SAMPLE = "The Normans were the people who gave their name to Normandy; 富士山 is Mount Fuji."
SCRIPTS = {
    "citeline": "from service.embeddings.sparse import Bm25Encoder as E; "
    f"print(E().encode_query({SAMPLE!r}).indices)",
    "qdrant_edge": "import qdrant_edge as qe; "
    f"print(sorted(qe.Bm25(qe.Bm25Config()).embed_query({SAMPLE!r}).indices))",
}


def vectors_of(name: str, texts: list[str], query: bool) -> list[dict[int, float]]:
    if name == "citeline":
        enc = Bm25Encoder()
        out = [enc.encode_query(t) if query else enc.encode_document(t) for t in texts]
    else:
        model = qe.Bm25(qe.Bm25Config())
        out = [model.embed_query(t) if query else model.embed_document(t) for t in texts]
    return [dict(zip(v.indices, v.values, strict=True)) for v in out]


def bm25_run(docs: list[dict[int, float]], ids: list[str], queries: list[dict[int, float]],
             qids: list[str], k: int = 100) -> dict[str, list[str]]:  # fmt: skip
    postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for i, vec in enumerate(docs):
        for t, w in vec.items():
            postings[t].append((i, w))
    n = len(docs)
    run = {}
    for qid, q in zip(qids, queries, strict=True):
        scores: dict[int, float] = defaultdict(float)
        for t, qw in q.items():
            plist = postings.get(t, [])
            idf = math.log(1 + (n - len(plist) + 0.5) / (len(plist) + 0.5))
            for i, w in plist:
                scores[i] += idf * w * qw
        best = sorted(scores.items(), key=lambda x: -x[1])[:k]
        run[qid] = [ids[i] for i, _ in best]
    return run


def stable_ids(name: str) -> bool:
    outs = {
        subprocess.run(
            [sys.executable, "-c", SCRIPTS[name]],
            capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    return len(outs) == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result: dict[str, Any] = {"ids_stable_across_processes": {}}
    for name in SCRIPTS:
        result["ids_stable_across_processes"][name] = stable_ids(name)
    for folder in args.data:
        data = load_dataset(folder)
        texts, ids = [d.text for d in data.corpus], [d.doc_id for d in data.corpus]
        qids = [q for q in data.queries if q in data.qrels]
        row: dict[str, Any] = {}
        for name in SCRIPTS:
            t0 = time.perf_counter()
            docs = vectors_of(name, texts, query=False)
            seconds = time.perf_counter() - t0
            queries = vectors_of(name, [data.queries[q] for q in qids], query=True)
            scores = evaluate(bm25_run(docs, ids, queries, qids), data.qrels)
            row[name] = {**scores, "docs_per_s": round(len(texts) / seconds)}
            log(f"{data.name} {name}: {row[name]}")
        result[data.name] = row
    return report(result, args.out, started)


if __name__ == "__main__":
    sys.exit(main())
