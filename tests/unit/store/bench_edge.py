"""Benchmark EdgeStore: upsert throughput, query latency before/after maintain(), optimize cost.

Not a test (pytest does not collect it). Run:
    .venv/bin/python -m tests.unit.store.bench_edge --scenario fresh   # optimize on fresh data
    .venv/bin/python -m tests.unit.store.bench_edge --scenario churn   # re-index half, maintain()
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from service.store.base import ChunkPoint, Scope, SparseVector
from service.store.edge import EdgeStore

VOCAB = 50_000
SCOPES = [Scope(f"tenant-{i}", f"collection-{i % 3}") for i in range(10)]
TEXT = "lorem ipsum dolor sit amet " * 40  # ~1 KB, a typical chunk


def zipf_terms(rng: np.random.Generator, n: int) -> list[int]:
    """`n` distinct term ids with a Zipf-like frequency, as in natural text."""
    terms: set[int] = set()
    while len(terms) < n:
        terms.update(int(t) % VOCAB for t in rng.zipf(1.15, size=n * 2))
    return sorted(terms)[:n]


def make_points(rng: np.random.Generator, doc: int, n: int, terms: int) -> list[ChunkPoint]:
    points = []
    for i in range(n):
        ids = zipf_terms(rng, terms)
        tf = rng.integers(1, 4, size=len(ids))
        weights = (tf * 2.2 / (tf + 1.2)).tolist()  # BM25 tf saturation, k1=1.2
        points.append(
            ChunkPoint(
                document_id=f"doc-{doc}",
                version="v1",
                chunk_index=i,
                text=TEXT,
                start=i * 1000,
                end=i * 1000 + len(TEXT),
                sparse=SparseVector(indices=ids, values=weights),
                metadata={"year": 2000 + doc % 25, "lang": "en"},
            )
        )
    return points


def latencies(store: EdgeStore, rng: np.random.Generator, n: int = 300) -> str:
    samples = []
    for i in range(n):
        q = zipf_terms(rng, 8)
        sparse = SparseVector(indices=q, values=[1.0] * len(q))
        t = time.perf_counter()
        store.search(SCOPES[i % len(SCOPES)], sparse=sparse, limit=10)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99)]
    return f"p50 {statistics.median(samples):.2f} ms, p99 {p99:.2f} ms, max {samples[-1]:.2f} ms"


class Ticker:
    """A 1 ms ticker thread: its longest gap is how long the process (GIL) was frozen."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """Seconds `call` took, and the longest the process was frozen meanwhile."""
    with Ticker() as ticker:
        t = time.perf_counter()
        call()
        took = time.perf_counter() - t
    return took, ticker.max_gap


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--terms", type=int, default=100)
    parser.add_argument("--scenario", choices=["fresh", "churn"], default="fresh")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "shard")
        docs: list[list[ChunkPoint]] = []
        upsert_s = 0.0
        while (written := sum(map(len, docs))) < args.points:
            docs.append(make_points(rng, len(docs), min(256, args.points - written), args.terms))
            t = time.perf_counter()
            store.upsert(SCOPES[(len(docs) - 1) % len(SCOPES)], docs[-1])
            upsert_s += time.perf_counter() - t
        print(f"upsert: {written} points in {upsert_s:.1f} s = {written / upsert_s:.0f} points/s")
        print(f"segments {store._shard.info().segments_count}; query: {latencies(store, rng)}")
        if args.scenario == "fresh":
            took, frozen = timed(store._shard.optimize)
            print(f"optimize: {took:.2f} s, process frozen up to {frozen:.2f} s")
        else:
            maintain_runs: list[tuple[float, float]] = []
            for d in range(0, len(docs), 2):  # re-index half the documents, as the pipeline does
                v2 = [dataclasses.replace(p, version="v2") for p in docs[d]]
                store.upsert(SCOPES[d % len(SCOPES)], v2)
                store.delete_documents(SCOPES[d % len(SCOPES)], [f"doc-{d}"], keep_version="v2")
                maintain_runs.append(timed(store.maintain))
            slow = [(t, f) for t, f in maintain_runs if t > 0.05]
            print(f"re-indexed half; {len(maintain_runs)} maintain() calls, {len(slow)} optimized:")
            print("  " + ", ".join(f"{t:.2f} s (frozen {f:.2f} s)" for t, f in slow))
        print(f"segments {store._shard.info().segments_count}; query: {latencies(store, rng)}")
        store.close()


if __name__ == "__main__":
    main()
