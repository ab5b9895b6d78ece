"""Retrieval: encode the query, search the caller's scope, keep only live document versions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from schemas.filters import Filter
from service.catalog.base import JobRegistry
from service.embeddings import languages
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.query import relevance
from service.store.base import Hit, Scope, SparseVector, VectorStore, idf
from service.telemetry import logs, metrics, tracing
from service.tokens import count_tokens

# How long a term's IDF (and a scope's chunk count) is reused before it is probed again: writes
# from this or another process change them slowly, and relevance only needs them roughly.
_IDF_TTL_S = 300.0
_IDF_CACHE_LIMIT = 100_000

# Chunks of superseded or deleted versions, which the store may still hold for a moment, are
# dropped; when that leaves fewer hits than asked, the search is repeated this many times
# deeper (up to _MAX_DEPTH times the limit). Fetching extra hits up front instead cost every
# hybrid search at 100k chunks 1.7 ms (limit 18 instead of 10: 6.7 vs 5.0 ms in the store).
_DEEPER = 4
_MAX_DEPTH = 16


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None,
        registry: JobRegistry,
        min_relevance: float = relevance.DEFAULT_MIN_RELEVANCE,
    ) -> None:
        self.store, self.sparse, self.dense, self.registry = store, sparse, dense, registry
        self.min_relevance = min_relevance
        self._idf = _IdfCache(store)

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
        self,
        scope: Scope,
        query: str,
        limit: int,
        filters: Filter | None = None,
        min_relevance: float | None = None,
        language: str | None = None,
    ) -> list[Hit]:
        """The best `limit` hits, each with its relevance; those under `min_relevance` (when
        given) dropped. `language`: the query's (None: detected)."""
        async with self._observed(scope, limit):
            hits = await self._scored(scope, query, limit, filters, language)
        if min_relevance is None:
            return hits
        return [h for h in hits if (h.relevance or 0.0) >= min_relevance]

    async def relevant(
        self,
        scope: Scope,
        question: str,
        limit: int,
        filters: Filter | None = None,
        min_relevance: float | None = None,
        language: str | None = None,
    ) -> list[Hit]:
        """The hits good enough to answer from (relevance at least `min_relevance`, else the
        configured default); empty when none is."""
        floor = self.min_relevance if min_relevance is None else min_relevance
        return await self.search(scope, question, limit, filters, floor, language)

    async def _scored(
        self, scope: Scope, query: str, limit: int, filters: Filter | None, language: str | None
    ) -> list[Hit]:
        sparse = self.sparse.encode_query(query, language)
        terms = sparse.indices
        # The terms' IDF (for relevance) is probed while the question is embedded; without an
        # embedder there is nothing to overlap (the store holds the GIL), so it is probed only
        # when the search found something.
        overlap = terms and self.dense is not None
        idf_probe = asyncio.ensure_future(self._idf.get(scope, terms)) if overlap else None
        try:
            dense = await self._dense_vector(query)
            hits = await self._search(scope, sparse, dense, limit, filters)
            if idf_probe is not None:
                idf = await idf_probe
            elif terms and hits:
                idf = await self._idf.get(scope, terms)
            else:
                idf = {}
        finally:
            if idf_probe is not None and not idf_probe.done():
                idf_probe.cancel()
            elif idf_probe is not None and not idf_probe.cancelled():
                idf_probe.exception()  # retrieved: a search failure is what is raised
        for hit in hits:
            lexical = None
            if terms:
                in_chunk = hit.terms
                if in_chunk is None:  # the store did not return the stored vector
                    chunk_language = languages.of_metadata(hit.metadata)
                    in_chunk = frozenset(self.sparse.encode_query(hit.text, chunk_language).indices)
                lexical = relevance.lexical(terms, idf, in_chunk)
            hit.relevance = round(relevance.combined(lexical, hit.similarity), 4)
        return hits

    async def _dense_vector(self, query: str) -> Sequence[float] | None:
        if self.dense is None:
            return None
        tokens = count_tokens(query)
        with tracing.embedding_span(self.dense, tokens):
            dense = await self.dense.embed_query(query)
        metrics.EMBEDDING_TOKENS.labels(self.dense.model, "query").inc(tokens)
        return dense

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
        fetch = limit
        while True:
            hits = await asyncio.to_thread(
                self.store.search, scope, sparse=sparse, dense=dense, limit=fetch, filters=filters
            )
            live = await self._live(scope, hits)
            if len(live) >= limit or len(hits) < fetch or fetch >= _MAX_DEPTH * limit:
                return live[:limit]
            fetch *= _DEEPER

    async def _live(self, scope: Scope, hits: list[Hit]) -> list[Hit]:
        active = await self.registry.active_versions(scope, [h.document_id for h in hits])
        return [h for h in hits if active.get(h.document_id) == h.version]


class _IdfCache:
    """The store's IDF per (scope, term) and chunk count per scope, reused for _IDF_TTL_S: a
    probe costs about a search, and a collection's statistics move slowly."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._known: dict[tuple[Scope, int], tuple[float | None, float]] = {}
        self._counts: dict[Scope, tuple[int, float]] = {}

    async def get(self, scope: Scope, terms: Sequence[int]) -> dict[int, float]:
        now = time.monotonic()
        found: dict[int, float | None] = {}
        for t in terms:
            cached = self._known.get((scope, t))
            if cached is not None and now - cached[1] < _IDF_TTL_S:
                found[t] = cached[0]
        missing = [t for t in terms if t not in found]
        if missing:
            probed = await asyncio.to_thread(self.store.term_idf, scope, missing)
            if len(self._known) + len(probed) > _IDF_CACHE_LIMIT:
                self._known.clear()
            for t, value in probed.items():
                self._known[(scope, t)] = (value, now)
            found.update(probed)
        if all(v is not None for v in found.values()):
            return {t: v for t, v in found.items() if v is not None}
        # A term no chunk holds weighs the most: the IDF of a document frequency of zero.
        unseen = idf(await self._count(scope, now), 0)
        return {t: unseen if v is None else v for t, v in found.items()}

    async def _count(self, scope: Scope, now: float) -> int:
        cached = self._counts.get(scope)
        if cached is not None and now - cached[1] < _IDF_TTL_S:
            return cached[0]
        count = await asyncio.to_thread(self.store.chunk_count, scope)
        if len(self._counts) >= _IDF_CACHE_LIMIT:
            self._counts.clear()
        self._counts[scope] = (count, now)
        return count
