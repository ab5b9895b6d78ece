"""The arq queue against the embedded inline queue, on the same corpus and embedder.

    python -m tests.bench.queue --data DIR [--docs 3000] [--embedder bm25|stub] [--quick]

Prints one JSON object on stdout (progress on stderr). For each of: inline (the embedded
queue: SQLite registry, pipeline in this process), arq with 1 worker, arq with 2 workers:
  - throughput: the corpus replicated to --docs documents is accepted in batches of 500
    through the queue's own `accept` (no HTTP); the clock runs from the first accept to the
    last job's `finished_at`; workers are started (and warmed up) before the clock starts;
  - latency: --probes single documents accepted one at a time, 20 ms apart, on an idle queue:
    `accept` call time (the API side's cost per job) and enqueue-to-start (`started_at` -
    `created_at` of each job).
Each arq worker is a `python -m workers` process owning its own Qdrant Edge shard (no Qdrant
server here, and an Edge shard belongs to one process), so the two-worker figure is an upper
bound for two workers writing to one shared Qdrant server. Redis is a `redis-server` this
script starts on a free port. `--embedder stub` adds the OpenAI-compatible stub (a
subprocess) answering /v1/embeddings after --stub-latency seconds, like a remote API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from service.catalog.base import JobRegistry, NewDocument
from service.catalog.redis_registry import RedisRegistry
from service.config import Settings
from service.jobs.arq_queue import ArqQueue, arq_redis
from service.jobs.embedded import JobQueue
from service.runtime import Runtime
from service.store.base import Scope
from tests.bench.data import load_dataset
from tests.bench.metrics import latency_ms
from tests.bench.server import REPO_ROOT, free_port, log
from tests.stubs.openai_stub import RemoteStub, spawn_stub

SCOPE = Scope("default", "default")
DIM = 64


def new_docs(corpus: list[Any], n: int, tag: str, per_doc: int = 1) -> list[NewDocument]:
    """`n` distinct documents of `per_doc` consecutive corpus paragraphs each, cycling through
    the corpus (a copy number makes each one unique)."""
    docs = []
    for i in range(n):
        first = i * per_doc
        parts = [corpus[(first + k) % len(corpus)] for k in range(per_doc)]
        text = "\n\n".join(p.text for p in parts) + f" (copy {first // len(corpus)})"
        docs.append(NewDocument(SCOPE, f"{tag}-{i}", text, parts[0].title, None, {}, 512, 64))
    return docs


def env_for(args: argparse.Namespace, stub_url: str | None) -> dict[str, str]:
    env = {
        "CITELINE_LOG_LEVEL": "warning",
        "CITELINE_WORKER_MAX_JOBS": "128",
        "CITELINE_JOB_TIMEOUT_S": "120",
    }
    if stub_url:
        env |= {
            "CITELINE_EMBEDDING_BASE_URL": stub_url,
            "CITELINE_EMBEDDING_MODEL": "stub-embed",
            "CITELINE_EMBEDDING_DIMENSION": str(DIM),
        }
    return env


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        [*args, "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(url).ping():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def start_workers(n: int, url: str, workdir: Path, env: dict[str, str]) -> list[Any]:
    client = redis.Redis.from_url(url, decode_responses=True)
    workdir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(n):
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
        worker_env |= env | {"CITELINE_REDIS_URL": url, "CITELINE_DATA_DIR": str(workdir / f"w{i}")}
        worker_env["PYTHONPATH"] = str(REPO_ROOT)
        procs.append(
            subprocess.Popen([sys.executable, "-m", "workers"], env=worker_env, cwd=workdir)
        )
    deadline = time.monotonic() + 120
    while sum(bool(client.exists(f"cl:worker:{w}")) for w in client.smembers("cl:workers")) < n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("workers did not start")
        time.sleep(0.1)
    return procs


async def run_phase(
    queue: JobQueue, registry: JobRegistry, docs: list[NewDocument], probes: list[NewDocument]
) -> dict[str, Any]:
    started = time.time()
    job_ids: list[str] = []
    for i in range(0, len(docs), 500):
        job_ids += [a.job_id for a in await queue.accept(docs[i : i + 500])]
    accepted_s = time.time() - started
    rows = await wait_done(registry, job_ids)
    chunks = sum(r.chunks_total or 0 for r in rows)
    took = max(r.finished_at or 0 for r in rows) - started
    accept_s: list[float] = []
    probe_ids: list[str] = []
    for doc in probes:  # idle queue: one at a time, 20 ms apart
        t = time.perf_counter()
        probe_ids += [a.job_id for a in await queue.accept([doc])]
        accept_s.append(time.perf_counter() - t)
        await asyncio.sleep(0.02)
    probe_rows = await wait_done(registry, probe_ids)
    return {
        "docs": len(docs),
        "chunks": chunks,
        "failed": sum(r.status != "completed" for r in rows),
        "seconds": round(took, 2),
        "accept_all_seconds": round(accepted_s, 2),
        "docs_per_s": round(len(docs) / took, 1),
        "chunks_per_s": round(chunks / took, 1),
        "wall_ms_per_job": round(1000 * took / len(docs), 3),
        "accept_one_ms": latency_ms(accept_s),
        "enqueue_to_start_ms": latency_ms([(r.started_at or 0) - r.created_at for r in probe_rows]),
    }


async def wait_done(registry: JobRegistry, job_ids: list[str]) -> list[Any]:
    """Poll the cheap status counts (not every row: that would load the machine measured)."""
    while True:
        counts = await registry.counts()
        if counts.get("queued", 0) + counts.get("running", 0) == 0:
            break
        await asyncio.sleep(0.1)
    return [await registry.job(j, SCOPE.tenant) for j in job_ids]


async def inline(
    args: argparse.Namespace,
    workdir: Path,
    env: dict[str, str],
    docs: list[NewDocument],
    probes: list[NewDocument],
) -> dict[str, Any]:
    overrides = {k.removeprefix("CITELINE_").lower(): v for k, v in env.items()}
    settings = Settings(data_dir=workdir / "inline", redis_url=None, **overrides)
    runtime = await Runtime.start(settings)
    try:
        return await run_phase(runtime.queue, runtime.registry, docs, probes)
    finally:
        await runtime.close()


async def arq(url: str, docs: list[NewDocument], probes: list[NewDocument]) -> dict[str, Any]:
    registry = RedisRegistry.from_url(url, timeout_s=30)
    queue = ArqQueue(registry, arq_redis(url, timeout_s=30), None, deadline_s=60)  # type: ignore[arg-type]
    try:
        return await run_phase(queue, registry, docs, probes)
    finally:
        await queue.stop()
        await registry.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="BEIR dataset folder")
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--paragraphs-per-doc", type=int, default=1, help="corpus paragraphs per doc")
    p.add_argument("--embedder", choices=["bm25", "stub"], default="bm25")
    p.add_argument("--stub-latency", type=float, default=0.05, help="seconds per embedding call")
    p.add_argument("--quick", action="store_true", help="300 documents, 50 probes")
    args = p.parse_args(argv)
    if args.quick:
        args.docs, args.probes = 300, 50
    if shutil.which("redis-server") is None:
        print(json.dumps({"skipped": "redis-server is not on PATH (apt-get install redis-server)"}))
        return
    corpus = load_dataset(args.data).corpus
    workdir = Path(tempfile.mkdtemp(prefix="citeline-bench-queue-"))
    result: dict[str, Any] = {
        "embedder": args.embedder,
        "paragraphs_per_doc": args.paragraphs_per_doc,
        "cpus": os.cpu_count(),
    }
    with contextlib.ExitStack() as stack:
        stub_url = None
        if args.embedder == "stub":
            stub = stack.enter_context(spawn_stub("--dimension", str(DIM)))
            RemoteStub(stub.url).faults.stall(args.stub_latency, endpoint="embeddings")
            stub_url = stub.base_url
            result["stub_latency_s"] = args.stub_latency
        env = env_for(args, stub_url)
        result["settings"] = env
        log(f"inline: {args.docs} documents")
        per_doc = args.paragraphs_per_doc
        docs, probes = (
            new_docs(corpus, args.docs, "in", per_doc),
            new_docs(corpus, args.probes, "pin"),
        )
        result["inline"] = asyncio.run(inline(args, workdir, env, docs, probes))
        for n in (1, 2):
            log(f"arq, {n} worker(s)")
            url = stack.enter_context(redis_server(workdir))
            procs = start_workers(n, url, workdir / f"arq{n}", env)
            try:
                docs = new_docs(corpus, args.docs, f"a{n}", per_doc)
                probes = new_docs(corpus, args.probes, f"pa{n}")
                result[f"arq_{n}_worker{'s' * (n > 1)}"] = asyncio.run(arq(url, docs, probes))
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait(60)
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
