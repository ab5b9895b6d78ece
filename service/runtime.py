"""Everything built once at start and closed at shutdown, handed to routes as `Runtime`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from schemas.filters import Filter
from schemas.query import Turn
from service.answering import AnswerEvent, ExtractiveAnswerer, answer_events
from service.config import Settings
from service.embeddings.dense import DenseEmbedder, OpenAIEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.indexing.pipeline import Pipeline
from service.indexing.queue import EmbeddedQueue
from service.indexing.registry import Registry
from service.retrieval import Retriever
from service.store.base import Scope, VectorStore

log = logging.getLogger("citeline")

MAINTENANCE_IDLE_S = 5.0


def build_store(settings: Settings) -> VectorStore:
    dim = settings.embedding_dimension if settings.dense_enabled else None
    if settings.qdrant_url:
        from service.store.qdrant import QdrantStore

        return QdrantStore(
            settings.qdrant_url,
            dense_dim=dim,
            collection_name=settings.qdrant_collection,
            api_key=settings.qdrant_api_key,
        )
    from service.store.edge import EdgeStore

    return EdgeStore(settings.data_dir / "qdrant-edge", dense_dim=dim)


def build_dense(settings: Settings) -> DenseEmbedder | None:
    if not settings.dense_enabled:
        return None
    assert settings.embedding_model and settings.embedding_base_url
    return OpenAIEmbedder(
        base_url=settings.embedding_base_url,
        api_key=settings.embedding_api_key,
        model=settings.embedding_model,
        dimension=settings.embedding_dimension,
        timeout=settings.embedding_timeout_s,
        max_retries=settings.embedding_max_retries,
    )


@dataclass
class Runtime:
    settings: Settings
    registry: Registry
    store: VectorStore
    sparse: Bm25Encoder
    dense: DenseEmbedder | None
    queue: EmbeddedQueue
    retriever: Retriever
    answerer: ExtractiveAnswerer
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    last_query_at: float = 0.0
    _maintenance: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        registry = Registry(settings.data_dir / "registry.sqlite3")
        resumed = await registry.open()
        store = await asyncio.to_thread(build_store, settings)
        sparse = Bm25Encoder(avg_len=settings.bm25_avg_len)
        dense = build_dense(settings)
        pipeline = Pipeline(
            registry=registry,
            store=store,
            sparse=sparse,
            dense=dense,
            batch_size=settings.embed_batch_size,
            queue_size=settings.pipeline_queue_size,
        )
        queue = EmbeddedQueue(registry, pipeline, max_inflight=settings.max_inflight_jobs)
        runtime = cls(
            settings=settings,
            registry=registry,
            store=store,
            sparse=sparse,
            dense=dense,
            queue=queue,
            retriever=Retriever(store, sparse, dense, registry, settings.min_relevance),
            answerer=ExtractiveAnswerer(sparse, max_tokens=settings.answer_max_tokens),
        )
        await queue.start()
        runtime._maintenance = asyncio.create_task(runtime._maintain(), name="store.maintain")
        log.info("runtime.started", extra={"resumed_jobs": resumed})
        return runtime

    async def answer(
        self,
        scope: Scope,
        question: str,
        max_results: int | None = None,
        filters: Filter | None = None,
        history: Sequence[Turn] = (),
    ) -> AsyncIterator[AnswerEvent]:
        """Retrieve, then return the answer run's events; retrieval errors raise before any."""
        started = time.perf_counter()
        self.last_query_at = time.monotonic()
        limit = max_results or self.settings.default_max_results
        hits = await self.retriever.relevant(scope, question, limit, filters)
        return answer_events(question, hits, self.answerer, started)

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        await self.queue.stop()
        if self.dense is not None:
            await self.dense.aclose()
        await asyncio.to_thread(self.store.close)
        await self.registry.close()

    async def _maintain(self) -> None:
        """Optimise the index only when no job runs and no query came for a while."""
        while True:
            await asyncio.sleep(MAINTENANCE_IDLE_S)
            quiet = time.monotonic() - self.last_query_at > MAINTENANCE_IDLE_S
            if quiet and self.queue.inflight == 0:
                with contextlib.suppress(RuntimeError):
                    await asyncio.to_thread(self.store.maintain)
