"""Which registry and queue run, from the settings.

| CITELINE_REDIS_URL | CITELINE_WORKER | registry | queue                                        |
|--------------------|-----------------|----------|----------------------------------------------|
| unset              | (ignored)       | SQLite   | in-process pipeline (`EmbeddedQueue`)         |
| set                | embedded        | Redis    | arq; an arq worker in the API process         |
| set                | external        | Redis    | arq; `python -m workers` processes (needs     |
|                    |                 |          | CITELINE_QDRANT_URL, checked by `Settings`)  |
"""

from __future__ import annotations

import logging

from service.config import Settings
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.indexing.pipeline import Pipeline
from service.indexing.queue import EmbeddedQueue, JobQueue
from service.indexing.registry import SqliteRegistry
from service.indexing.registry_base import JobRegistry
from service.store.base import VectorStore

log = logging.getLogger("citeline")

SQLITE_FILE = "registry.sqlite3"


async def open_indexing(
    settings: Settings, store: VectorStore, sparse: Bm25Encoder, dense: DenseEmbedder | None
) -> tuple[JobRegistry, JobQueue, int]:
    """Open the registry and build the (not yet started) queue; also returns waiting jobs."""
    if settings.redis_url is None:
        sqlite = SqliteRegistry(settings.data_dir / SQLITE_FILE)
        resumed = await sqlite.open()
        pipeline = Pipeline(
            registry=sqlite,
            store=store,
            sparse=sparse,
            dense=dense,
            batch_size=settings.embed_batch_size,
            queue_size=settings.pipeline_queue_size,
            retry_budget_s=settings.embed_retry_budget_s,
        )
        return sqlite, EmbeddedQueue(sqlite, pipeline, settings.max_inflight_jobs), resumed

    from service.indexing.queue_arq import ArqQueue, arq_redis
    from service.indexing.registry_redis import RedisRegistry
    from service.indexing.worker_local import LocalArqWorker

    if (settings.data_dir / SQLITE_FILE).exists():
        log.warning(
            "registry.sqlite_ignored: CITELINE_REDIS_URL selects the Redis job registry; "
            "documents recorded in %s are not served from it",
            settings.data_dir / SQLITE_FILE,
        )
    registry = RedisRegistry.from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
    waiting = await registry.open()
    local = (
        LocalArqWorker(settings, registry, store, sparse, dense)
        if settings.worker == "embedded"
        else None
    )
    queue = ArqQueue(
        registry,
        arq_redis(settings.redis_url, timeout_s=settings.redis_timeout_s),
        store,
        deadline_s=settings.redis_timeout_s + 0.5,
        worker=local,
    )
    return registry, queue, waiting
