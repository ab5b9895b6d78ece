"""Retrieval: encode the query, search the caller's scope, keep only live document versions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from schemas.filters import Filter
from service.catalog.base import JobRegistry
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.store.base import Hit, Scope, SparseVector, VectorStore
from service.telemetry import logs, metrics, tracing
from service.tokens import count_tokens

# Extra hits fetched so that chunks of superseded or deleted versions, which the store may
# still hold for a moment, can be dropped without returning fewer results than asked.
_OVERFETCH = 8


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None,
        registry: JobRegistry,
        min_relevance: float,
        min_dense_similarity: float,
    ) -> None:
        self.store, self.sparse, self.dense, self.registry = store, sparse, dense, registry
        self.min_relevance = min_relevance
        self.min_dense_similarity = min_dense_similarity

    @asynccontextmanager
    async def _observed(self, scope: Scope, limit: int) -> AsyncIterator[None]:
        """The retrieval's latency metric, span and log context."""
        logs.update(tenant=scope.tenant, collection=scope.collection)
        mode = "bm25" if self.dense is None else "hybrid"
        started = time.perf_counter()
        attributes = {"citeline.collection": scope.collection, "citeline.limit": limit}
        with tracing.span("retrieval", **attributes, **{"citeline.retrieval_mode": mode}):
            yield
        metrics.RETRIEVAL.labels(mode).observe(time.perf_counter() - started)

    async def search(
        self, scope: Scope, query: str, limit: int, filters: Filter | None = None
    ) -> list[Hit]:
        async with self._observed(scope, limit):
            sparse, dense = await self._vectors(query)
            return await self._search(scope, sparse, dense, limit, filters)

    async def relevant(
        self, scope: Scope, question: str, limit: int, filters: Filter | None = None
    ) -> list[Hit]:
        """The hits good enough to answer from; empty when nothing clears the thresholds."""
        async with self._observed(scope, limit):
            return await self._relevant_hits(scope, question, limit, filters)

    async def _relevant_hits(
        self, scope: Scope, question: str, limit: int, filters: Filter | None
    ) -> list[Hit]:
        sparse, dense = await self._vectors(question)
        hits = await self._search(scope, sparse, dense, limit, filters)
        if dense is None:
            return [h for h in hits if self._relevant(h, sparse)]
        if not hits:
            return []
        # Fused (RRF) scores are ranks, not relevance: ask each leg for its own best score.
        if sparse.indices:
            best = await self._search(scope, sparse, None, 1, filters)
            if best and best[0].score >= self.min_relevance:
                return hits
        best = await self._search(scope, None, dense, 1, filters)
        return hits if best and best[0].score >= self.min_dense_similarity else []

    def _relevant(self, hit: Hit, query: SparseVector) -> bool:
        """A BM25 score over the threshold, or half the question's terms present.

        IDF shrinks with the collection: in a collection of a few documents even a perfect match
        scores under any fixed threshold, so term coverage decides there.
        """
        if hit.score >= self.min_relevance:
            return True
        found = set(query.indices) & set(self.sparse.encode_query(hit.text).indices)
        return 2 * len(found) >= len(query.indices)

    async def _vectors(self, query: str) -> tuple[SparseVector, Sequence[float] | None]:
        dense = None
        if self.dense is not None:
            tokens = count_tokens(query)
            with tracing.embedding_span(self.dense, tokens):
                dense = await self.dense.embed_query(query)
            metrics.EMBEDDING_TOKENS.labels(self.dense.model, "query").inc(tokens)
        return self.sparse.encode_query(query), dense

    async def _search(
        self,
        scope: Scope,
        sparse: SparseVector | None,
        dense: Sequence[float] | None,
        limit: int,
        filters: Filter | None,
    ) -> list[Hit]:
        if (sparse is None or not sparse.indices) and dense is None:
            return []
        fetch = limit + _OVERFETCH
        while True:
            hits = await asyncio.to_thread(
                self.store.search, scope, sparse=sparse, dense=dense, limit=fetch, filters=filters
            )
            live = await self._live(scope, hits)
            if len(live) >= limit or len(hits) < fetch or fetch >= 16 * limit + _OVERFETCH:
                return live[:limit]
            fetch *= 4

    async def _live(self, scope: Scope, hits: list[Hit]) -> list[Hit]:
        active = await self.registry.active_versions(scope, [h.document_id for h in hits])
        return [h for h in hits if active.get(h.document_id) == h.version]
