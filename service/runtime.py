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
    EXTRACTIVE_MODEL,
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
from service.store import naming
from service.store.base import Scope, VectorStore

log = logging.getLogger("citeline")


def build_store(settings: Settings) -> VectorStore:
    """The physical collection of the configured embedding model (see `store.naming`)."""
    record = embedding_record(settings)
    if settings.qdrant_url:
        from service.store.qdrant import QdrantStore

        return QdrantStore(
            settings.qdrant_url,
            dense_dim=record.dimension,
            collection_name=naming.server_collection(settings.qdrant_collection, record),
            api_key=settings.qdrant_api_key,
            record=record,
        )
    return naming.open_edge_store(settings.data_dir, record)


def embedding_record(settings: Settings) -> naming.EmbeddingRecord:
    if not settings.dense_enabled:
        return naming.EmbeddingRecord(None, None)
    return naming.EmbeddingRecord(settings.embedding_model, settings.embedding_dimension)


def build_dense(settings: Settings) -> DenseEmbedder | None:
    if not settings.dense_enabled:
        return None
    assert settings.embedding_model is not None
    if settings.embedding_provider == "local":
        from service.embeddings.local import LocalEmbedder  # torch: only when configured

        local = LocalEmbedder(settings.embedding_model, settings.embedding_dimension)
        if settings.max_chunk_size_tokens > local.max_tokens:  # word pieces, about as many
            log.warning(
                "embeddings.truncated: %s reads the first %d tokens of each chunk; chunks have up "
                "to %d (CITELINE_MAX_CHUNK_SIZE_TOKENS), so their ends reach BM25 only",
                local.model, local.max_tokens, settings.max_chunk_size_tokens,
            )  # fmt: skip
        return local
    assert settings.embedding_base_url is not None
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

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # A local model takes seconds to load: off the loop, and before the store is opened.
        dense = await asyncio.to_thread(build_dense, settings)
        store = await asyncio.to_thread(build_store, settings)
        sparse = Bm25Encoder(avg_len=settings.bm25_avg_len)
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

    def embedding_cost(self, tokens: int) -> float | None:
        """Estimated dollars for indexing `tokens` with the dense embedder (local: free)."""
        if not tokens or self.settings.embedding_provider == "local":
            return 0.0
        model = self.settings.embedding_model or ""
        return estimate_cost(model, 0, 0, tokens, self.settings.model_prices, embedding_model=model)

    def _cost(self, model: str, meter: Meter) -> float | None:
        # In-process work (extractive answers, the local embedder) has no per-token price.
        local = self.settings.embedding_provider == "local"
        extractive = model == EXTRACTIVE_MODEL
        return estimate_cost(
            model,
            0 if extractive else meter.prompt_tokens,
            0 if extractive else meter.completion_tokens,
            0 if local else meter.embedding_tokens,
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
