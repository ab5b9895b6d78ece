"""Embedded Qdrant Edge store: one shard directory holds every tenant and collection.

Every EdgeShard call (query, update, optimize) holds the GIL for its whole run, so calls never
overlap and threads give no parallelism; the shard's own locks keep concurrent use from several
threads correct, so the store adds none. Upserts are cut into batches so that other threads (and
the event loop) get the GIL back between them.

The engine reports its failures as plain `Exception` (a ValueError for malformed input);
`_engine` turns the former into `StoreError` at this one boundary.

`compact` rewrites the shard so that deleted points leave the disk (see `edge_compact`); a
lock around every shard call lets it swap the shard. The lock costs no parallelism: Edge calls
hold the GIL anyway.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import qdrant_edge as qe

from schemas.filters import Filter
from service.store import base, edge_compact
from service.store.base import ChunkPoint, Hit, Leg, Scope, SparseVector, StoreError
from service.store.filters import edge_filter

log = logging.getLogger("citeline.store")

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
        # The engine's words may name files of the data dir: the log has them, callers do not.
        log.warning("store.engine_failed", extra={"op": what, "detail": str(exc)})
        raise StoreError(f"the embedded store failed to {what}") from exc


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
        self._lock = threading.RLock()  # held by every shard call; compact swaps the shard
        edge_compact.swap_in(path)  # finishes (or drops) a compaction a crash cut short
        self._shard = self._open()

    def _open(self) -> qe.EdgeShard:
        config = _config(self._dense_dim)
        if (self._path / _CONFIG_FILE).exists():
            # Passing the config makes Edge check it against the stored segments: a different
            # dense_dim fails here instead of on the first write.
            shard = qe.EdgeShard.load(str(self._path), config)
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(self._path), config)
        _index_fields(shard)
        return shard

    def upsert(self, scope: Scope, points: Sequence[ChunkPoint]) -> None:
        converted = [self._point(scope, p) for p in points]  # every point checked before a write
        for start in range(0, len(converted), _UPSERT_BATCH):
            batch = converted[start : start + _UPSERT_BATCH]
            with self._lock, _engine("write"):
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
        with self._lock, _engine("search"):
            points = self._shard.query(request)
        return [base.hit_from_payload(str(p.id), p.score, p.payload or {}) for p in points]

    def delete_document(
        self, scope: Scope, document_id: str, *, keep_version: str | None = None
    ) -> None:
        """Delete a document's chunks, all of them or all but those of `keep_version`."""
        self._delete(edge_filter(scope, document_id=document_id, exclude_version=keep_version))

    def delete_collection(self, scope: Scope) -> None:
        """Delete every chunk of the scope."""
        self._delete(edge_filter(scope))

    def _delete(self, flt: qe.Filter) -> None:
        # Counted for maintain(); a concurrent upsert may make it slightly off, which is fine.
        with self._lock, _engine("delete"):
            doomed = self._shard.count(qe.CountRequest(filter=flt, exact=True))
            if doomed:
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
        if doomed:
            with self._garbage_lock:
                self._garbage += doomed

    def chunk_ids(self, scope: Scope, document_id: str | None = None) -> list[str]:
        """Ids of every stored chunk in scope (of one document when given)."""
        flt = edge_filter(scope, document_id=document_id)
        return [str(r.id) for r in self._scroll(flt, False)]

    def document_versions(self, scope: Scope, filters: Filter | None) -> dict[str, set[str]]:
        """The documents (and their stored versions) with a chunk that matches `filters`."""
        found: dict[str, set[str]] = {}
        for r in self._scroll(edge_filter(scope, filters=filters), ["document_id", "version"]):
            payload = r.payload or {}
            found.setdefault(payload["document_id"], set()).add(payload["version"])
        return found

    def _scroll(self, flt: qe.Filter, with_payload: bool | list[str]) -> list[qe.Record]:
        out: list[qe.Record] = []
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=_SCROLL_PAGE, filter=flt, with_payload=with_payload
            )
            with self._lock, _engine("read"):
                records, offset = self._shard.scroll(request)
            out.extend(records)
            if offset is None:
                return out

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
        with self._lock:
            live = self._shard.info().points_count
        with self._garbage_lock:
            garbage = self._garbage
        if garbage < max(_GARBAGE_MIN, _GARBAGE_RATIO * live):
            return
        with self._lock, _engine("optimize"):
            self._shard.optimize()
        with self._garbage_lock:
            self._garbage -= garbage

    def snapshot(self, target: Path) -> None:
        """Flush, then copy the shard's files. Edge 0.9 can restore snapshots that a server
        made but cannot make one, and nothing rewrites a flushed shard's files while writes
        are paused (it optimises only when `maintain` says so), so the copy is consistent."""
        with self._lock, _engine("flush"):  # not amid a compaction
            self._shard.flush()
            shutil.copytree(self._path, target)

    def compact(self) -> None:
        """Rewrite the shard with its live points only, so that nothing of a deleted point
        stays on disk (segments and write-ahead log alike). Blocks every other use of the
        store while it runs (about as long as writing all points once): off the request path.
        """
        new = self._path / edge_compact.NEW
        with self._lock, _engine("compact"):
            self._shard.flush()
            edge_compact.copy_live(self._shard, new, _config(self._dense_dim), _index_fields)
            self._shard.close()
            edge_compact.swap_in(self._path)
            self._shard = self._open()
        with self._garbage_lock:
            self._garbage = 0

    def close(self) -> None:
        with self._lock:
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


def _index_fields(shard: qe.EdgeShard) -> None:
    existing = shard.info().payload_schema
    for name in base.INDEXED_FIELDS:
        if name not in existing:
            params = qe.KeywordIndexParams(is_tenant=name == "tenant")
            shard.update(qe.UpdateOperation.create_field_index(name, params))
