"""`make bench`: ingestion, write latency under load, retrieval and /v1/query latency, memory.

    python -m tests.bench.run --data DIR [--chunks 100000] [--quick] [--out FILE]

Prints one JSON object on stdout (progress on stderr). Phases, all on one fresh data dir:
  a+b. a server subprocess ingests the replicated corpus in batches while a second client posts
       single documents at a steady rate; then peak RSS after ingestion;
  c.   the server stops and this process opens the same data dir with `Runtime.start` to time
       `retriever.search` and the raw `store.search`, as served and after a forced optimise;
  d.   a server restarts on the data dir for sequential `/v1/query` calls and SSE first bytes;
  e.   peak RSS after the query phase and the data dir's size on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench import inproc
from tests.bench.data import load_dataset
from tests.bench.ingest import replicate, run_ingestion
from tests.bench.query import query_latency, stream_ttfb
from tests.bench.server import REPO_ROOT, disk_mib, log, report, running_server, total_chunks
from tests.bench.targets import check_targets

DEFINITIONS = {
    "units": "suffix _ms milliseconds, _s/_seconds seconds, _mib MiB; latency dicts: p50/p95/"
    "p99/mean/max in ms and n samples, measured by the client unless named server_*",
    "ingestion": "first batch POST until every batch job is completed (GET /readyz counts); "
    "chunks_indexed summed from GET /v1/documents; the probe documents go to the collection "
    "'probe' and are not counted",
    "probe_post_document": "one small new document per 1/rate s on its own connection during "
    "the ingestion; probe_healthz is GET /healthz the same way (event-loop stalls alone)",
    "retrieval_in_process": "Runtime.start on the stopped server's data dir; retriever.search "
    "(limit 10) and its parts: encode_query and the raw store.search (limit 18, no thread hop)",
}

FULL = {"chunks": 100_000, "retrieval": 2000, "query": 1000, "stream": 200, "warmup": 100}
QUICK = {"chunks": 5_000, "retrieval": 300, "query": 200, "stream": 50, "warmup": 20}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="BEIR dataset folder")
    p.add_argument("--chunks", type=int, help="chunks to ingest (default 100000; quick 5000)")
    p.add_argument("--quick", action="store_true", help="a small smoke-test run")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--connections", type=int, default=4, help="concurrent batch connections")
    p.add_argument("--probe-rate", type=float, default=20.0, help="single POSTs per second")
    p.add_argument("--timeout", type=float, default=3600.0, help="bound on the ingestion, s")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    return p.parse_args(argv)


def code_version() -> dict[str, Any]:
    """The commit measured and how many files differed from it (read-only git calls)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "changed_files": len(changed)}


def load_avg() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [round(x, 2) for x in os.getloadavg()]


def phase_ingest(args: argparse.Namespace, data_dir: Path, docs: list[Any]) -> dict[str, Any]:
    with running_server(data_dir) as server:
        result = run_ingestion(
            server,
            docs,
            batch_size=args.batch_size,
            connections=args.connections,
            probe_rate=args.probe_rate,
            timeout=args.timeout,
        )
        with server.client() as c:
            result["chunks_indexed"] = total_chunks(c)
        result["server_memory_mib"] = server.memory_mib()
    result["chunks_per_s"] = round(result["chunks_indexed"] / result["seconds"], 1)
    result["data_dir_mib"] = disk_mib(data_dir)
    return result


def phase_query(data_dir: Path, questions: list[str], sizes: dict[str, int]) -> dict[str, Any]:
    started = time.perf_counter()
    with running_server(data_dir) as server:
        ready_s = time.perf_counter() - started
        warm = min(sizes["warmup"], 50)
        result: dict[str, Any] = {"server_start_seconds": round(ready_s, 2)}
        result["query"] = query_latency(server, questions[: sizes["query"]], warm)
        result["stream"] = stream_ttfb(server, questions[: sizes["stream"]], warm)
        result["server_memory_mib"] = server.memory_mib()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = dict(QUICK if args.quick else FULL)
    if args.chunks:
        sizes["chunks"] = args.chunks
    data = load_dataset(args.data)
    questions = list(data.queries.values())
    random.Random(0).shuffle(questions)
    docs, expected_chunks = replicate(data.corpus, sizes["chunks"])
    log(f"{len(docs)} documents, {expected_chunks} chunks expected; sizes {sizes}")
    load = {"start": load_avg()}
    with tempfile.TemporaryDirectory(prefix="citeline-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        ingest = phase_ingest(args, data_dir, docs)
        load["after_ingestion"] = load_avg()
        log("phase c: in-process retrieval")
        retrieval_qs = questions[: sizes["retrieval"]]
        retrieval = asyncio.run(inproc.measure(data_dir, retrieval_qs, sizes["warmup"]))
        load["after_retrieval"] = load_avg()
        log("phase d: /v1/query over HTTP")
        query = phase_query(data_dir, questions, sizes)
        load["after_queries"] = load_avg()
        disk = disk_mib(data_dir)
    return {
        "definitions": DEFINITIONS,
        "parameters": {
            "dataset": data.name,
            "quick": args.quick,
            "chunks_target": sizes["chunks"],
            "chunks_expected": expected_chunks,
            "docs": len(docs),
            "batch_size": args.batch_size,
            "batch_connections": args.connections,
            "probe_rate_per_s": args.probe_rate,
            "nproc": len(os.sched_getaffinity(0)),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "code": code_version(),
            "load_avg_1_5_15m": load,
        },
        "ingestion": ingest,
        "retrieval_in_process": retrieval,
        "query_http": query,
        "memory": {
            "server_peak_rss_after_ingestion_mib": ingest["server_memory_mib"]["VmHWM"],
            "server_peak_rss_after_queries_mib": query["server_memory_mib"]["VmHWM"],
            "data_dir_mib_after_ingestion": ingest["data_dir_mib"],
            "data_dir_mib_at_end": disk,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    result = run(args)
    result["targets"] = check_targets(result)
    return report(result, args.out, started)


if __name__ == "__main__":
    sys.exit(main())
