"""Which catalog and queue run, from the settings.

| CITELINE_QUEUE     | CITELINE_WORKER | catalog  | indexing runs                               |
|--------------------|-----------------|----------|---------------------------------------------|
| embedded (default) | (must be unset) | SQLite   | this process's pipeline (`EmbeddedQueue`)    |
| arq                | embedded        | Redis    | an arq worker inside this process            |
| arq                | external        | Redis    | `python -m workers` processes (they need     |
|                    |                 |          | CITELINE_QDRANT_URL, checked by `Settings`)  |
"""

from __future__ import annotations

import logging

from service.catalog.base import JobRegistry
from service.catalog.sqlite_registry import SqliteRegistry
from service.config import Settings
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.indexing.pipeline import pipeline_from_settings
from service.jobs.base import JobQueue
from service.jobs.embedded import EmbeddedQueue
from service.store.base import VectorStore

log = logging.getLogger("citeline")

SQLITE_FILE = "registry.sqlite3"


async def open_jobs(
    settings: Settings, store: VectorStore, sparse: Bm25Encoder, dense: DenseEmbedder | None
) -> tuple[JobRegistry, JobQueue]:
    """Open the catalog and build the (not yet started) queue."""
    if settings.queue == "embedded":
        sqlite = SqliteRegistry(settings.data_dir / SQLITE_FILE)
        await sqlite.open()
        pipeline = pipeline_from_settings(settings, sqlite, store, sparse, dense)
        return sqlite, EmbeddedQueue(sqlite, pipeline, settings.max_inflight_jobs)

    from service.catalog.redis_registry import RedisRegistry
    from service.jobs.arq_job import WorkerCore
    from service.jobs.arq_queue import ArqQueue, arq_redis
    from service.jobs.local_worker import LocalArqWorker

    assert settings.redis_url is not None  # Settings checks it for CITELINE_QUEUE=arq
    if (settings.data_dir / SQLITE_FILE).exists():
        log.warning(
            "registry.sqlite_ignored: CITELINE_QUEUE=arq keeps documents and jobs in Redis; "
            "documents recorded in %s are not served from it",
            settings.data_dir / SQLITE_FILE,
        )
    registry = RedisRegistry.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
    await registry.open()
    local = None
    if settings.worker != "external":
        core = WorkerCore(settings, registry, registry.redis, store, sparse, dense)
        local = LocalArqWorker(settings, core)
    queue = ArqQueue(
        registry,
        arq_redis(settings.redis_url, timeout_s=settings.redis_timeout_s),
        store,
        deadline_s=settings.redis_timeout_s + 0.5,
        worker=local,
    )
    return registry, queue
