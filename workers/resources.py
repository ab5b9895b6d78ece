"""What one worker process opens at start and closes at exit (arq's on_startup/on_shutdown)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from service.catalog.redis_registry import RedisRegistry
from service.clients import build_dense, build_sparse, build_store
from service.config import Settings
from service.embeddings.dense import DenseEmbedder
from service.jobs.arq_job import WorkerCore
from service.store.base import VectorStore

log = logging.getLogger("citeline.worker")

# Workers may wait longer on Redis than the API, which must answer within 2 s.
WORKER_REDIS_TIMEOUT_S = 5.0


@dataclass
class WorkerResources:
    store: VectorStore
    dense: DenseEmbedder | None
    registry: RedisRegistry
    core: WorkerCore

    @classmethod
    async def open(cls, settings: Settings) -> WorkerResources:
        assert settings.redis_url is not None  # checked by `python -m workers`
        if settings.qdrant_url is None:
            log.warning(
                "worker.embedded_store: this worker owns the Qdrant Edge store in %s; no other "
                "process can use it while it runs. Set CITELINE_QDRANT_URL to share a Qdrant "
                "server with the API.",
                settings.data_dir,
            )
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        dense = await asyncio.to_thread(build_dense, settings)  # a local model loads for seconds
        store = await asyncio.to_thread(build_store, settings)
        registry = RedisRegistry.from_url(settings.redis_url, timeout_s=WORKER_REDIS_TIMEOUT_S)
        await registry.open()
        core = WorkerCore(settings, registry, registry.redis, store, build_sparse(settings), dense)
        await core.start()
        return cls(store, dense, registry, core)

    async def close(self) -> None:
        await self.core.stop()
        if self.dense is not None:
            await self.dense.aclose()
        await asyncio.to_thread(self.store.close)
        await self.registry.close()


async def startup(ctx: dict[str, Any]) -> None:
    resources = await WorkerResources.open(ctx["settings"])
    ctx["resources"], ctx["indexer"] = resources, resources.core.indexer


async def shutdown(ctx: dict[str, Any]) -> None:
    resources: WorkerResources | None = ctx.get("resources")
    if resources is not None:
        await resources.close()
