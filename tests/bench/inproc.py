"""Phase (c): retrieval latency inside the process, on the data dir the server filled.

The server must be stopped first: an embedded Edge shard belongs to one process at a time.
The forced optimise afterwards (EdgeShard.optimize, which the store's own `maintain` may skip)
shows what segment merging would change; the targets are judged on the shard as served.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.config import Settings
from service.runtime import Runtime
from service.store.base import Scope
from tests.bench.metrics import latency_ms
from tests.bench.server import log

SCOPE = Scope("default", "default")
LIMIT = 10
RAW_FETCH = LIMIT  # what Retriever.search asks the store for first


async def _timed_retriever(runtime: Runtime, questions: list[str]) -> dict[str, Any]:
    """`Retriever.search` as the routes call it."""
    samples: list[float] = []
    empty = 0
    for q in questions:
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
        t0 = time.perf_counter()
        sparse = runtime.retriever.sparse.encode_query(q)
        t1 = time.perf_counter()
        runtime.store.search(SCOPE, sparse=sparse, limit=RAW_FETCH)
        t2 = time.perf_counter()
        encode.append(t1 - t0)
        store.append(t2 - t1)
    return {"encode_query_ms": latency_ms(encode), "store_search_ms": latency_ms(store)}


async def _measure_pass(runtime: Runtime, questions: list[str]) -> dict[str, Any]:
    retriever = await _timed_retriever(runtime, questions)
    return {"retriever_search": retriever, **_timed_parts(runtime, questions)}


@contextlib.contextmanager
def _no_citeline_env() -> Iterator[None]:
    """Settings from defaults only, as the bench's server subprocess gets them."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CITELINE_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def _settings(data_dir: Path) -> Settings:
    with _no_citeline_env():
        return Settings(_env_file=None, data_dir=data_dir, log_level="warning")  # type: ignore[call-arg]


def _optimize(runtime: Runtime) -> None:
    """A full optimise of the Edge shard, whether or not the store's own policy would run one."""
    shard = getattr(runtime.store, "_shard", None)
    if shard is not None:
        shard.optimize()
    else:
        runtime.store.maintain()


async def _warm(runtime: Runtime, questions: list[str]) -> None:
    for q in questions:
        await runtime.retriever.search(SCOPE, q, LIMIT)


async def measure(data_dir: Path, questions: list[str], warmup: int) -> dict[str, Any]:
    """Times the search on the shard as the server left it, then after a forced optimise."""
    started = time.perf_counter()
    runtime = await Runtime.start(_settings(data_dir))
    try:
        opened = time.perf_counter() - started
        log(f"in-process runtime opened in {opened:.1f} s; warming up")
        await _warm(runtime, questions[:warmup])
        as_served = await _measure_pass(runtime, questions)
        log("in-process: pass 1 done; forcing a shard optimise")
        t0 = time.perf_counter()
        await asyncio.to_thread(_optimize, runtime)
        optimize_s = time.perf_counter() - t0
        await _warm(runtime, questions[:warmup])
        optimized = await _measure_pass(runtime, questions)
    finally:
        await runtime.close()
    return {
        "questions": len(questions),
        "warmup": warmup,
        "limit": LIMIT,
        "runtime_open_seconds": round(opened, 2),
        "as_served": as_served,
        "forced_optimize_seconds": round(optimize_s, 2),
        "after_forced_optimize": optimized,
    }
