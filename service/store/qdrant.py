"""Qdrant server store (qdrant-client, sync); `":memory:"` runs qdrant-client's local mode.

Local mode is pure Python, slow and unindexed: fine for contract tests, not for data. It is not
thread-safe either, so the store serialises calls in that mode; the HTTP client needs no lock.
Server errors, timeouts and lost connections are raised as `StoreError`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ApiException

from schemas.filters import Filter
from service.store import base, naming
from service.store.base import (
    ChunkPoint,
    Hit,
    Leg,
    Scope,
    SparseVector,
    StoreError,
    VersionsPage,
)
from service.store.filters import qdrant_filter

_LOCAL = ":memory:"
_UPSERT_BATCH = 256
_SCROLL_PAGE = 1024


class QdrantStore:
    """`VectorStore` on one physical Qdrant collection shared by every tenant and collection.

    Scoped IDF needs Qdrant server >= 1.19 (`params.idf.corpus`).
    """

    def __init__(
        self,
        url_or_location: str,
        dense_dim: int | None = None,
        collection_name: str = "citeline_chunks",
        api_key: str | None = None,
        record: naming.EmbeddingRecord | None = None,
    ) -> None:
        """`record`: the embedding model the collection must hold (see `naming`); None: any."""
        if dense_dim is not None and dense_dim <= 0:
            raise ValueError(f"dense_dim must be positive, got {dense_dim}")
        self._local = url_or_location == _LOCAL
        self._client = QdrantClient(location=url_or_location, api_key=api_key)
        self._name = collection_name
        self._dense_dim = dense_dim
        self._record = record
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._local else contextlib.nullcontext()
        )
        self._ensure_collection()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One call to the server (one at a time in local mode), its failures as StoreError."""
        with self._serial:
            try:
                yield
            except (ApiException, httpx.HTTPError, OSError) as exc:
                raise StoreError(f"the Qdrant server failed: {type(exc).__name__}") from exc

    def _ensure_collection(self) -> None:
        if self._client.collection_exists(self._name):
            self._check_existing()
            return
        dense = (
            {base.DENSE_VECTOR: qm.VectorParams(size=self._dense_dim, distance=qm.Distance.COSINE)}
            if self._dense_dim is not None
            else {}
        )
        # Multitenancy as Qdrant advises for many tenants in one collection: every search filters
        # by tenant (its keyword index below has is_tenant, so a tenant's points sit together),
        # so HNSW graphs are built per tenant (payload_m) and no global graph (m=0), which also
        # keeps indexing cost per tenant. Chunk texts are the bulk of the payload: on disk.
        self._client.create_collection(
            self._name,
            vectors_config=dense,
            sparse_vectors_config={
                base.SPARSE_VECTOR: qm.SparseVectorParams(modifier=qm.Modifier.IDF)
            },
            hnsw_config=qm.HnswConfigDiff(m=0, payload_m=16),
            on_disk_payload=True,
            metadata=self._record.metadata() if self._record is not None else None,
        )
        if self._local:
            return  # local mode ignores payload indexes and warns about each one
        for name in base.INDEXED_FIELDS:
            schema: qm.PayloadSchemaType | qm.KeywordIndexParams = (
                qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)
                if name == "tenant"
                else qm.PayloadSchemaType.KEYWORD
            )
            self._client.create_payload_index(self._name, name, field_schema=schema, wait=True)

    def _check_existing(self) -> None:
        config = self._client.get_collection(self._name).config
        params = config.params
        vectors = params.vectors if isinstance(params.vectors, dict) else {}
        size = vectors[base.DENSE_VECTOR].size if base.DENSE_VECTOR in vectors else None
        where = f"Qdrant collection {self._name!r}"
        record = self._record
        if record is not None and not naming.check_recorded(where, config.metadata, size, record):
            self._client.update_collection(self._name, metadata=record.metadata())  # adopt it
        if size != self._dense_dim:
            raise ValueError(
                f"collection {self._name!r} has dense size {size}, not {self._dense_dim}"
            )
        if base.SPARSE_VECTOR not in (params.sparse_vectors or {}):
            raise ValueError(f"collection {self._name!r} has no {base.SPARSE_VECTOR!r} vector")

    def upsert(self, scope: Scope, points: Sequence[ChunkPoint]) -> None:
        converted = [self._point(scope, p) for p in points]  # every point checked before a write
        for start in range(0, len(converted), _UPSERT_BATCH):
            batch = converted[start : start + _UPSERT_BATCH]
            with self._lock():
                self._client.upsert(self._name, points=batch, wait=True)

    def search(
        self,
        scope: Scope,
        *,
        sparse: SparseVector | None,
        dense: Sequence[float] | None = None,
        limit: int = 10,
        filters: Filter | None = None,
    ) -> list[Hit]:
        """Top `limit` chunks; sparse and dense prefetches fused with RRF when both are given."""
        legs_in = base.search_legs(sparse, dense, self._dense_dim)
        legs = [self._leg(scope, leg) for leg in legs_in]
        if limit <= 0 or not legs:
            return []
        flt = qdrant_filter(scope, filters=filters)
        dense_query = next((leg.dense for leg in legs_in if leg.dense is not None), None)
        # The sparse vectors come back (each hit's terms, for its relevance), and in hybrid
        # search the dense ones too (each hit's cosine to the question).
        fused = dense_query is not None and len(legs) > 1
        with_vectors = [base.SPARSE_VECTOR, *([base.DENSE_VECTOR] if fused else [])]
        if len(legs) == 1:
            query, using, params = legs[0]
            kwargs: dict[str, Any] = {"query": query, "using": using, "search_params": params}
        else:
            depth = base.prefetch_depth(limit)
            prefetch = [
                qm.Prefetch(query=query, using=using, params=params, filter=flt, limit=depth)
                for query, using, params in legs
            ]
            kwargs = {
                "prefetch": prefetch,
                "query": qm.RrfQuery(rrf=qm.Rrf(k=base.RRF_K, weights=list(base.RRF_WEIGHTS))),
            }
        with self._lock():
            response = self._client.query_points(
                self._name,
                query_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=with_vectors,
                **kwargs,
            )
        points = response.points
        stored = [_named(p, base.SPARSE_VECTOR) for p in points]
        return base.hits_with_evidence(
            [(str(p.id), p.score, p.payload or {}) for p in points],
            [v.indices if isinstance(v, qm.SparseVector) else None for v in stored],
            dense_query, fused, lambda: [_named(p, base.DENSE_VECTOR) for p in points],
        )  # fmt: skip

    def term_idf(self, scope: Scope, terms: Sequence[int]) -> dict[int, float | None]:
        """One-term probes in one batch: IDF = score / the top point's weight for the term."""
        terms = list(dict.fromkeys(terms))
        if not terms:
            return {}
        flt = qdrant_filter(scope)
        params = qm.SearchParams(idf=qm.IdfCorpusParams(corpus=flt))
        probes = [
            qm.QueryRequest(
                query=qm.SparseVector(indices=[t], values=[1.0]),
                using=base.SPARSE_VECTOR,
                params=params,
                filter=flt,
                limit=1,
                with_vector=[base.SPARSE_VECTOR],
            )
            for t in terms
        ]
        with self._lock():
            found = self._client.query_batch_points(self._name, requests=probes)
        out: dict[int, float | None] = {}
        for term, response in zip(terms, found, strict=True):
            if not response.points:
                out[term] = None
                continue
            point = response.points[0]
            vector = _named(point, base.SPARSE_VECTOR)
            if not isinstance(vector, qm.SparseVector):
                raise StoreError("Qdrant returned no sparse vector")
            out[term] = base.probed_idf(term, point.score, vector.indices, vector.values)
        return out

    def chunk_count(self, scope: Scope) -> int:
        with self._lock():
            return self._client.count(
                self._name, count_filter=qdrant_filter(scope), exact=True
            ).count

    def delete_documents(
        self, scope: Scope, document_ids: Sequence[str], *, keep_version: str | None = None
    ) -> None:
        """Delete the documents' chunks, all of them or all but those of `keep_version`."""
        if document_ids:
            self._delete(
                qdrant_filter(scope, document_ids=document_ids, exclude_version=keep_version)
            )

    def delete_collection(self, scope: Scope) -> None:
        """Delete every chunk of the scope."""
        self._delete(qdrant_filter(scope))

    def _delete(self, flt: qm.Filter) -> None:
        with self._lock():
            self._client.delete(
                self._name, points_selector=qm.FilterSelector(filter=flt), wait=True
            )

    def chunk_ids(self, scope: Scope, document_id: str | None = None) -> list[str]:
        """Ids of every stored chunk in scope (of one document when given)."""
        flt = qdrant_filter(scope, document_ids=None if document_id is None else [document_id])
        return base.all_ids(lambda start: self._page(flt, False, start))

    def document_versions(
        self, scope: Scope, filters: Filter | None, start: str | None = None
    ) -> VersionsPage:
        """One page of the chunks in scope that match `filters`: their document versions."""
        flt = qdrant_filter(scope, filters=filters)
        records, after = self._page(flt, ["document_id", "version"], start)
        return base.versions_page(((r.id, r.payload or {}) for r in records), after)

    def _page(
        self, flt: qm.Filter, with_payload: bool | list[str], start: qm.ExtendedPointId | None
    ) -> tuple[list[qm.Record], qm.ExtendedPointId | None]:
        """Up to _SCROLL_PAGE matching points from the point id `start`, and the next id."""
        with self._lock():
            return self._client.scroll(
                self._name,
                scroll_filter=flt,
                limit=_SCROLL_PAGE,
                offset=start,
                with_payload=with_payload,
            )

    def maintain(self) -> None:
        """Nothing to do: the server runs its own optimisers."""

    def snapshot(self, target: Path) -> None:
        """A server-side snapshot of the collection (Qdrant's snapshot API): it stays in the
        server's snapshot storage; `target/qdrant-snapshot.json` names it for the restore."""
        with self._lock():
            made = self._client.create_snapshot(self._name, wait=True)
        if made is None:
            raise StoreError(f"Qdrant made no snapshot of {self._name!r}")
        target.mkdir(parents=True)
        note = {"collection": self._name, "snapshot": made.name, "size": made.size}
        (target / "qdrant-snapshot.json").write_text(json.dumps(note, indent=2) + "\n")

    def compact(self) -> None:
        """Nothing to do here: the server vacuums deleted points itself (its optimisers), and
        local mode keeps its points in memory."""

    def close(self) -> None:
        self._client.close()

    def _point(self, scope: Scope, p: ChunkPoint) -> qm.PointStruct:
        sparse = base.check_sparse(p.sparse)
        vectors: dict[str, Any] = {
            base.SPARSE_VECTOR: qm.SparseVector(indices=sparse.indices, values=sparse.values)
        }
        if p.dense is not None:
            vectors[base.DENSE_VECTOR] = base.check_dense(p.dense, self._dense_dim)
        pid = base.point_id(scope, p.document_id, p.version, p.chunk_index)
        return qm.PointStruct(id=pid, vector=vectors, payload=base.chunk_payload(scope, p))

    def _leg(self, scope: Scope, leg: Leg) -> tuple[Any, str, qm.SearchParams | None]:
        if leg.dense is not None:
            return leg.dense, leg.using, None
        assert leg.sparse is not None
        vector = qm.SparseVector(indices=leg.sparse.indices, values=leg.sparse.values)
        # IDF over this tenant's collection only, as in EdgeStore.
        idf = qm.IdfCorpusParams(corpus=qdrant_filter(scope))
        return vector, leg.using, qm.SearchParams(idf=idf)


def _named(point: qm.ScoredPoint, name: str) -> Any:
    """The point's vector `name`, None when it has none (a chunk stored without one)."""
    vectors = point.vector
    return vectors.get(name) if isinstance(vectors, dict) else None
