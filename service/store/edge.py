"""Embedded Qdrant Edge store: one shard directory holds every tenant and collection.

Every EdgeShard call (query, update, optimize) holds the GIL for its whole run, so calls never
overlap and threads give no parallelism; the shard's own locks keep concurrent use from several
threads correct, so the store adds none. Upserts are cut into batches so that other threads (and
the event loop) get the GIL back between them.

The engine reports its failures as plain `Exception` (a ValueError for malformed input);
`_engine` turns the former into `StoreError` at this one boundary.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import qdrant_edge as qe

from schemas.filters import Filter
from service.store import base
from service.store.base import ChunkPoint, Hit, Leg, Scope, SparseVector, StoreError
from service.store.filters import edge_filter

_CONFIG_FILE = "edge_config.json"  # written by EdgeShard.create: its presence means "load"
_UPSERT_BATCH = 32
_SCROLL_PAGE = 1024
_GARBAGE_RATIO = 0.2  # as Qdrant's own vacuum threshold (deleted_threshold)
_GARBAGE_MIN = 1000
# The stubs type `query` as `Fusion`, but the runtime wants the `Fusion.Rrf` instance (k required).
_RRF = cast(qe.Fusion, qe.Fusion.Rrf(k=base.RRF_K, weights=list(base.RRF_WEIGHTS)))


@contextmanager
def _engine(what: str) -> Iterator[None]:
    try:
        yield
    except ValueError:
        raise
    except Exception as exc:  # the engine's only error type for its own failures
        raise StoreError(f"the embedded store failed to {what}: {exc}") from exc


def _config(dense_dim: int | None) -> qe.EdgeConfig:
    dense = (
        {base.DENSE_VECTOR: qe.EdgeVectorParams(size=dense_dim, distance=qe.Distance.Cosine)}
        if dense_dim is not None
        else None
    )
    return qe.EdgeConfig(
        vectors=dense,
        sparse_vectors={base.SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


class EdgeStore:
    """`VectorStore` on an embedded Qdrant Edge shard at `path` (one process per directory)."""

    def __init__(self, path: Path, dense_dim: int | None = None) -> None:
        if dense_dim is not None and dense_dim <= 0:
            raise ValueError(f"dense_dim must be positive, got {dense_dim}")
        self._dense_dim = dense_dim
        self._path = path
        self._garbage = 0  # points deleted since the last optimize
        self._garbage_lock = threading.Lock()
        config = _config(dense_dim)
        if (path / _CONFIG_FILE).exists():
            # Passing the config makes Edge check it against the stored segments: a different
            # dense_dim fails here instead of on the first write.
            self._shard = qe.EdgeShard.load(str(path), config)
        else:
            path.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(path), config)
        existing = self._shard.info().payload_schema
        for name in base.INDEXED_FIELDS:
            if name not in existing:
                params = qe.KeywordIndexParams(is_tenant=name == "tenant")
                self._shard.update(qe.UpdateOperation.create_field_index(name, params))

    def upsert(self, scope: Scope, points: Sequence[ChunkPoint]) -> None:
        converted = [self._point(scope, p) for p in points]  # every point checked before a write
        for start in range(0, len(converted), _UPSERT_BATCH):
            batch = converted[start : start + _UPSERT_BATCH]
            with _engine("write"):
                self._shard.update(qe.UpdateOperation.upsert_points(batch))

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
        legs = [self._leg(scope, leg) for leg in base.search_legs(sparse, dense, self._dense_dim)]
        if limit <= 0 or not legs:
            return []
        flt = edge_filter(scope, filters=filters)
        if len(legs) == 1:
            query, params = legs[0]
            request = qe.QueryRequest(
                limit=limit, query=query, params=params, filter=flt, with_payload=True
            )
        else:
            depth = base.prefetch_depth(limit)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=depth, query=query, params=params, filter=flt)
                    for query, params in legs
                ],
                query=_RRF,
                filter=flt,
                with_payload=True,
            )
        with _engine("search"):
            points = self._shard.query(request)
        return [base.hit_from_payload(str(p.id), p.score, p.payload or {}) for p in points]

    def delete_document(
        self, scope: Scope, document_id: str, *, keep_version: str | None = None
    ) -> None:
        """Delete a document's chunks, all of them or all but those of `keep_version`."""
        flt = edge_filter(scope, document_id=document_id, exclude_version=keep_version)
        # Counted for maintain(); a concurrent upsert may make it slightly off, which is fine.
        with _engine("delete"):
            doomed = self._shard.count(qe.CountRequest(filter=flt, exact=True))
            if doomed:
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
        if doomed:
            with self._garbage_lock:
                self._garbage += doomed

    def chunk_ids(self, scope: Scope, document_id: str | None = None) -> list[str]:
        """Ids of every stored chunk in scope (of one document when given)."""
        flt = edge_filter(scope, document_id=document_id)
        ids: list[str] = []
        offset: Any = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=flt)
            with _engine("read"):
                records, offset = self._shard.scroll(request)
            ids.extend(str(r.id) for r in records)
            if offset is None:
                return ids

    def maintain(self) -> None:
        """Compact the shard once enough chunks were deleted; otherwise return at once.

        EdgeShard.optimize() holds the GIL, freezing the whole process, for ~80-120 us per stored
        point (8-12 s at 100k BM25 points), and no optimizer setting bounds a single run. For
        BM25 queries it buys nothing except dropping deleted points, which do slow queries down
        (p50 9 ms before, 3.5 ms after, once half of 100k points were re-indexed). So it runs
        only once deletions since the last run reach `_GARBAGE_RATIO` of the live points; still
        call it only where a pause of that length is acceptable. The count lives in memory: a
        restart forgets it.
        """
        live = self._shard.info().points_count
        with self._garbage_lock:
            garbage = self._garbage
        if garbage < max(_GARBAGE_MIN, _GARBAGE_RATIO * live):
            return
        with _engine("optimize"):
            self._shard.optimize()
        with self._garbage_lock:
            self._garbage -= garbage

    def snapshot(self, target: Path) -> None:
        """Flush, then copy the shard's files. Edge 0.9 can restore snapshots that a server
        made but cannot make one, and nothing rewrites a flushed shard's files while writes
        are paused (it optimises only when `maintain` says so), so the copy is consistent."""
        with _engine("flush"):
            self._shard.flush()
        shutil.copytree(self._path, target)

    def close(self) -> None:
        self._shard.close()

    def _point(self, scope: Scope, p: ChunkPoint) -> qe.Point:
        sparse = base.check_sparse(p.sparse)
        vectors: dict[str, Any] = {
            base.SPARSE_VECTOR: qe.SparseVector(list(sparse.indices), list(sparse.values))
        }
        if p.dense is not None:
            vectors[base.DENSE_VECTOR] = base.check_dense(p.dense, self._dense_dim)
        pid = base.point_id(scope, p.document_id, p.version, p.chunk_index)
        return qe.Point(pid, vectors, base.chunk_payload(scope, p))

    def _leg(self, scope: Scope, leg: Leg) -> tuple[qe.Query, qe.SearchParams | None]:
        if leg.dense is not None:
            return qe.Query.Nearest(leg.dense, using=leg.using), None
        assert leg.sparse is not None
        vector = qe.SparseVector(list(leg.sparse.indices), list(leg.sparse.values))
        # IDF over this tenant's collection only: other tenants' documents must not change
        # this one's rankings (nor leak through its scores).
        idf = qe.IdfParams(corpus=edge_filter(scope))
        return qe.Query.Nearest(vector, using=leg.using), qe.SearchParams(idf=idf)
