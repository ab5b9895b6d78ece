"""Worker subprocesses, job submission and store checks for the scaled-out tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from service.catalog.base import Accepted, NewDocument
from service.catalog.redis_registry import RedisRegistry
from service.clients import build_store
from service.config import Settings
from service.indexing.chunking import chunk_text
from service.jobs.arq_queue import arq_redis, enqueue
from service.store.base import Scope, point_id
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[3]
SCOPE = Scope("default", "default")
WORDS = "granite basalt obsidian pumice marble slate quartz feldspar mica gneiss".split()  # noqa: SIM905


def make_doc(doc_id: str, sentences: int, *, tokens: int = 64, salt: str = "") -> NewDocument:
    text = " ".join(
        f"{WORDS[(k + len(doc_id)) % 10]} {doc_id} line {k}{salt}." for k in range(sentences)
    )
    return NewDocument(SCOPE, doc_id, text, None, None, {}, tokens, 0)


def worker_env(redis_url: str, data_dir: Path, **settings: Any) -> dict[str, str]:
    """Environment of a worker subprocess owning an Edge store in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
    env.update(
        CITELINE_QUEUE="arq",
        CITELINE_REDIS_URL=redis_url,
        CITELINE_DATA_DIR=str(data_dir),
        CITELINE_LOG_LEVEL="warning",
        CITELINE_WORKER_HEARTBEAT_S="2",
        CITELINE_WORKER_POLL_DELAY_S="0.05",
        CITELINE_JOB_TIMEOUT_S="10",
        CITELINE_JOB_RETRY_BASE_S="0.1",
    )
    env.update({f"CITELINE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def live_workers(client: redis.Redis) -> set[str]:
    ids: set[str] = client.smembers("cl:workers")  # type: ignore[assignment]
    return {w for w in ids if client.exists(f"cl:worker:{w}")}


def start_worker(env: dict[str, str], client: redis.Redis) -> subprocess.Popen[bytes]:
    """Spawn `python -m workers` and wait until it has announced itself."""
    before = live_workers(client)
    proc = subprocess.Popen([sys.executable, "-m", "workers"], env=env, cwd=REPO)
    wait_until(lambda: proc.poll() is not None or live_workers(client) - before, timeout=60)
    assert proc.poll() is None, f"worker exited with {proc.returncode}"
    return proc


def submit(redis_url: str, docs: list[NewDocument]) -> list[Accepted]:
    """What POST /v1/documents does in scaled-out mode: registry, then enqueue."""

    async def run() -> list[Accepted]:
        registry = RedisRegistry.from_url(redis_url, timeout_s=5)
        arq = arq_redis(redis_url, timeout_s=5)
        try:
            accepted = await registry.accept(docs)
            fresh = {a.job_id for a in accepted if not a.duplicate}
            await enqueue(arq, [a.job_id for a in accepted], fresh=fresh)
            return accepted
        finally:
            await registry.close()
            await arq.aclose()

    return asyncio.run(run())


def jobs(client: redis.Redis, job_ids: list[str]) -> list[dict[str, str]]:
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hgetall(f"cl:job:{job_id}")
    rows: list[dict[str, str]] = pipe.execute()
    return rows


def wait_jobs(client: redis.Redis, job_ids: list[str], timeout: float = 60) -> list[dict[str, str]]:
    def done() -> list[dict[str, str]] | None:
        rows = jobs(client, job_ids)
        return rows if all(r.get("status") in ("completed", "failed") for r in rows) else None

    result: list[dict[str, str]] = wait_until(done, timeout=timeout, interval=0.05)
    return result


def expected_chunk_ids(docs: list[NewDocument], versions: dict[str, str]) -> set[str]:
    """Every point id the store must hold: chunked here, independently of the worker."""
    ids: set[str] = set()
    for doc in docs:
        assert doc.document_id is not None
        n = len(chunk_text(doc.text, doc.max_tokens, doc.overlap_tokens))
        ids |= {point_id(SCOPE, doc.document_id, versions[doc.document_id], i) for i in range(n)}
    return ids


def stored_chunk_ids(data_dir: Path, **settings: Any) -> list[str]:
    """The chunk ids in the store a worker with these settings wrote (it must be stopped)."""
    store = build_store(Settings(data_dir=data_dir, **settings))  # a store needs no queue
    try:
        return store.chunk_ids(SCOPE)
    finally:
        store.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# Settings of an API server running its arq worker in-process, tuned for short tests.
FAST: dict[str, Any] = {
    "worker_poll_delay_s": 0.05,
    "worker_heartbeat_s": 2,
    "job_timeout_s": 10,
    "job_retry_base_s": 0.05,
    "job_completion_wait_s": 2,
}


def scaled_server(make_server: Any, redis_url: str, **overrides: Any) -> Any:
    """A live API with the Redis registry and an in-process arq worker (embedded store)."""
    return make_server(queue="arq", redis_url=redis_url, **{**FAST, **overrides})
