"""Phase (c): retrieval latency inside the process, on the data dir the server filled.

The server must be stopped first: an embedded Edge shard belongs to one process at a time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from service.config import Settings
from service.runtime import Runtime
from service.store.base import Scope
from tests.bench.metrics import latency_ms
from tests.bench.server import log

SCOPE = Scope("default", "default")
LIMIT = 10
RAW_FETCH = LIMIT + 8  # what Retriever.search asks the store for (limit + _OVERFETCH)


async def _timed_retriever(runtime: Runtime, questions: list[str]) -> dict[str, Any]:
    """`Retriever.search` as the routes call it (they also stamp `last_query_at`)."""
    samples: list[float] = []
    empty = 0
    for q in questions:
        runtime.last_query_at = time.monotonic()
        started = time.perf_counter()
        hits = await runtime.retriever.search(SCOPE, q, LIMIT)
        samples.append(time.perf_counter() - started)
        empty += not hits
    return {"latency_ms": latency_ms(samples), "empty_results": empty}


def _timed_parts(runtime: Runtime, questions: list[str]) -> dict[str, Any]:
    """The split: query encoding, and the raw store search called directly (no thread hop)."""
    encode: list[float] = []
    store: list[float] = []
    for q in questions:
        runtime.last_query_at = time.monotonic()
        t0 = time.perf_counter()
        sparse = runtime.sparse.encode_query(q)
        t1 = time.perf_counter()
        runtime.store.search(SCOPE, sparse=sparse, limit=RAW_FETCH)
        t2 = time.perf_counter()
        encode.append(t1 - t0)
        store.append(t2 - t1)
    return {"encode_query_ms": latency_ms(encode), "store_search_ms": latency_ms(store)}


async def _measure_pass(runtime: Runtime, questions: list[str]) -> dict[str, Any]:
    retriever = await _timed_retriever(runtime, questions)
    return {"retriever_search": retriever, **_timed_parts(runtime, questions)}


async def measure(data_dir: Path, questions: list[str], warmup: int) -> dict[str, Any]:
    """Times the search as loaded, then after an explicit `store.maintain()` (optimize)."""
    started = time.perf_counter()
    settings = Settings(
        data_dir=data_dir,
        log_level="warning",
        qdrant_url=None,
        embedding_model=None,
        embedding_base_url=None,
    )
    runtime = await Runtime.start(settings)
    try:
        opened = time.perf_counter() - started
        log(f"in-process runtime opened in {opened:.1f} s; warming up")
        for q in questions[:warmup]:
            await runtime.retriever.search(SCOPE, q, LIMIT)
        as_loaded = await _measure_pass(runtime, questions)
        log("in-process: pass 1 done; optimising the shard")
        t0 = time.perf_counter()
        await asyncio.to_thread(runtime.store.maintain)
        optimize_s = time.perf_counter() - t0
        for q in questions[:warmup]:
            await runtime.retriever.search(SCOPE, q, LIMIT)
        optimized = await _measure_pass(runtime, questions)
    finally:
        await runtime.close()
    return {
        "questions": len(questions),
        "warmup": warmup,
        "limit": LIMIT,
        "runtime_open_seconds": round(opened, 2),
        "as_loaded": as_loaded,
        "optimize_seconds": round(optimize_s, 2),
        "after_optimize": optimized,
    }
