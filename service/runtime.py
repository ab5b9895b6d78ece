"""Everything built once at start and closed at shutdown, handed to routes as `Runtime`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from schemas.filters import Filter
from schemas.query import Turn
from service.answering import (
    Answerer,
    AnswerEvent,
    ExtractiveAnswerer,
    Meter,
    answer_events,
)
from service.config import Settings
from service.conversation import rewrite_question
from service.embeddings.dense import DenseEmbedder, OpenAIEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.indexing.queue import JobQueue
from service.indexing.registry_base import JobRegistry
from service.indexing.setup import open_indexing
from service.indexing.tokens import count_tokens
from service.llm.answerer import LLMAnswerer, build_llm
from service.llm.base import LLM
from service.pricing import estimate_cost
from service.retrieval import Retriever
from service.store.base import Scope, VectorStore

log = logging.getLogger("citeline")


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
    registry: JobRegistry
    store: VectorStore
    sparse: Bm25Encoder
    dense: DenseEmbedder | None
    queue: JobQueue
    retriever: Retriever
    answerer: Answerer
    llm: LLM | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    last_query_at: float = 0.0

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await asyncio.to_thread(build_store, settings)
        sparse = Bm25Encoder(avg_len=settings.bm25_avg_len)
        dense = build_dense(settings)
        registry, queue, resumed = await open_indexing(settings, store, sparse, dense)
        llm = build_llm(settings)  # once per process: its rate limiter is shared by all requests
        answerer: Answerer = (
            LLMAnswerer(llm, max_answer_tokens=settings.llm_max_answer_tokens)
            if llm is not None
            else ExtractiveAnswerer(sparse, max_tokens=settings.answer_max_tokens)
        )
        runtime = cls(
            settings=settings,
            registry=registry,
            store=store,
            sparse=sparse,
            dense=dense,
            queue=queue,
            retriever=Retriever(
                store,
                sparse,
                dense,
                registry,
                settings.min_relevance,
                settings.min_dense_similarity,
            ),
            answerer=answerer,
            llm=llm,
        )
        await queue.start()
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
        """Retrieve, then return the answer run's events; retrieval errors raise before any.

        A follow-up is rewritten into a standalone question for retrieval only; the answerer
        still sees the question as asked, with the history.
        """
        started = time.perf_counter()
        self.last_query_at = time.monotonic()
        meter = Meter()
        rewriter = self.llm if self.settings.llm_rewrite_questions else None
        search_for = await rewrite_question(question, history, rewriter, on_usage=meter.add)
        if self.dense is not None:
            meter.embedding_tokens += count_tokens(search_for)
        limit = max_results or self.settings.default_max_results
        hits = await self.retriever.relevant(scope, search_for, limit, filters)
        return answer_events(
            question, hits, self.answerer, started=started, meter=meter, cost=self._cost,
            history=history,
        )  # fmt: skip

    def _cost(self, model: str, meter: Meter) -> float | None:
        return estimate_cost(
            model, meter.prompt_tokens, meter.completion_tokens, meter.embedding_tokens,
            self.settings.model_prices, embedding_model=self.settings.embedding_model,
        )  # fmt: skip

    async def close(self) -> None:
        await self.queue.stop()
        if self.dense is not None:
            await self.dense.aclose()
        if self.llm is not None:
            await self.llm.aclose()
        await asyncio.to_thread(self.store.close)
        await self.registry.close()
