"""Embedded Qdrant Edge store: one shard directory holds every tenant and collection.

Every EdgeShard call (query, update, optimize) holds the GIL for its whole run, so calls never
overlap and threads give no parallelism; the shard's own locks keep concurrent use from several
threads correct, so the store adds none. Upserts are cut into batches so that other threads (and
the event loop) get the GIL back between them.

The engine reports its failures as plain `Exception` (a ValueError for malformed input);
`_engine` turns the former into `StoreError` at this one boundary.

`compact` rewrites the shard so that deleted points leave the disk (see `edge_compact`);
`maintain` optimises a copy of it in a child process and swaps that in (see `edge_optimize`).
A lock around every shard call lets them swap the shard; it costs no parallelism, as Edge
calls hold the GIL anyway. Writers also take `_writes` first, so that a copy of the files can
be taken while readers go on.

BM25 takes its IDF over the searched tenant's collection; `edge_census` knows when a cheaper
corpus (the tenant, or the whole shard) is provably the same one.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import qdrant_edge as qe

from schemas.filters import Filter
from service.store import base, edge_compact, edge_optimize
from service.store.base import (
    ChunkPoint,
    Hit,
    Leg,
    Scope,
    SparseVector,
    StoreError,
    VersionsPage,
)
from service.store.edge_census import IDF_EXACT, ScopeCensus
from service.store.filters import edge_filter

log = logging.getLogger("citeline.store")

_CONFIG_FILE = "edge_config.json"  # written by EdgeShard.create: its presence means "load"
_UPSERT_BATCH = 32
_SCROLL_PAGE = 1024
# `maintain` rebuilds the shard once this much was written or deleted since it last did.
_MAINTAIN_RATIO = 0.2  # of the live points (Qdrant's own vacuum threshold is 20 % deleted)
_MAINTAIN_MIN = 5000
# With deleted points held, every search takes its IDF over a filtered corpus (a BM25 search
# at 100k: 7.0 ms, 1.0 without; see `edge_census`) until a rebuild drops them: once writes
# pause, this much change earns a rebuild too, and so do deletes that came in during the last
# rebuild (replayed into its copy, they left it holding deleted points). Measured: hybrid 100k
# with half its documents deleted over HTTP, p50 21.9 and 18.1 ms after the last rebuild.
_REBUILD_DELETED_MIN = 1000
_CATCH_UP_ROUNDS = 5  # replay rounds with writers going on, before the one that holds them
_CHILD_TIMEOUT_S = 3600.0
_MAINTENANCE_COPIES = shutil.ignore_patterns(edge_compact.NEW, edge_optimize.NEW)
# The stubs type `query` as `Fusion`, but the runtime wants the `Fusion.Rrf` instance (k required).
_RRF = cast(qe.Fusion, qe.Fusion.Rrf(k=base.RRF_K, weights=list(base.RRF_WEIGHTS)))


class MaintenanceStopped(Exception):
    """A maintain run given up (the store is closing); the serving shard is untouched."""


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


def edge_config(dense_dim: int | None) -> qe.EdgeConfig:
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
        self._changed = 0  # points written or deleted since the shard was last rebuilt
        self._changed_seen = 0  # what the previous `maintain` call found (only it reads it)
        self._replayed_deletes = False  # the last rebuild's copy got deletes replayed into it
        self._changed_lock = threading.Lock()
        self._lock = threading.RLock()  # held by every shard call; compact swaps the shard
        self._writes = threading.Lock()  # held by writers (before `_lock`)
        self._log: edge_optimize.WriteLog | None = None  # writes to replay into a copy
        self._maintaining = threading.Lock()  # one maintain or compact at a time
        self._closing = threading.Event()  # stops a maintain run (and its child) at once
        # Finishes (or drops) a compaction or an optimisation that a crash cut short.
        edge_compact.swap_in(path)
        edge_compact.swap_in(path, edge_optimize.NEW)
        self._shard = self._open()
        self._census = ScopeCensus.of(self._shard, path)

    def _open(self) -> qe.EdgeShard:
        config = edge_config(self._dense_dim)
        if (self._path / _CONFIG_FILE).exists():
            # Passing the config makes Edge check it against the stored segments: a different
            # dense_dim fails here instead of on the first write.
            shard = qe.EdgeShard.load(str(self._path), config)
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(self._path), config)
            (self._path / IDF_EXACT).touch()  # nothing deleted yet
        index_fields(shard)
        return shard

    def upsert(self, scope: Scope, points: Sequence[ChunkPoint]) -> None:
        converted = [self._point(scope, p) for p in points]  # every point checked before a write
        for start in range(0, len(converted), _UPSERT_BATCH):
            batch = converted[start : start + _UPSERT_BATCH]
            with self._writes, self._lock, _engine("write"):
                self._census.add(scope)
                self._shard.update(qe.UpdateOperation.upsert_points(batch))
                if self._log is not None:
                    self._log.ids.update(p.id for p in batch)
        self._count_changes(len(converted))

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
        if limit <= 0 or not legs_in:
            return []
        flt = edge_filter(scope, filters=filters)
        dense_query = next((leg.dense for leg in legs_in if leg.dense is not None), None)
        # The sparse vectors come back (each hit's terms, for its relevance), and in hybrid
        # search the dense ones too (each hit's cosine to the question).
        fused = dense_query is not None and len(legs_in) > 1
        with_vector = [base.SPARSE_VECTOR, *([base.DENSE_VECTOR] if fused else [])]
        with self._lock, _engine("search"):  # the IDF corpus must match what the shard holds
            legs = [self._leg(scope, leg) for leg in legs_in]
            if len(legs) == 1:
                query, params = legs[0]
                request = qe.QueryRequest(
                    limit=limit,
                    query=query,
                    params=params,
                    filter=flt,
                    with_payload=True,
                    with_vector=with_vector,
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
                    with_vector=with_vector,
                )
            points = self._shard.query(request)
        stored = [_named(p, base.SPARSE_VECTOR) for p in points]
        return base.hits_with_evidence(
            [(str(p.id), p.score, p.payload or {}) for p in points],
            [v.indices if isinstance(v, qe.SparseVector) else None for v in stored],
            dense_query, fused, lambda: [_dense_of(p) for p in points],
        )  # fmt: skip

    def term_idf(self, scope: Scope, terms: Sequence[int]) -> dict[int, float | None]:
        """One-term probes in one batch: IDF = score / the top point's weight for the term."""
        terms = list(dict.fromkeys(terms))
        if not terms:
            return {}
        flt = edge_filter(scope)
        with self._lock, _engine("search"):
            params = self._census.idf_params(scope)
            probes = [
                qe.QueryRequest(
                    limit=1,
                    query=qe.Query.Nearest(qe.SparseVector([t], [1.0]), using=base.SPARSE_VECTOR),
                    params=params,
                    filter=flt,
                    with_vector=[base.SPARSE_VECTOR],
                )
                for t in terms
            ]
            found = self._shard.query_batch(qe.QueryBatchRequest(probes))
        out: dict[int, float | None] = {}
        for term, points in zip(terms, found, strict=True):
            if not points:
                out[term] = None
                continue
            vector = _named(points[0], base.SPARSE_VECTOR)
            if not isinstance(vector, qe.SparseVector):
                raise StoreError("the embedded store returned no sparse vector")
            out[term] = base.probed_idf(term, points[0].score, vector.indices, vector.values)
        return out

    def chunk_count(self, scope: Scope) -> int:
        with self._lock, _engine("count"):
            return self._shard.count(qe.CountRequest(filter=edge_filter(scope), exact=True))

    def delete_documents(
        self, scope: Scope, document_ids: Sequence[str], *, keep_version: str | None = None
    ) -> None:
        """Delete the documents' chunks, all of them or all but those of `keep_version`."""
        if document_ids:
            flt = edge_filter(scope, document_ids=document_ids, exclude_version=keep_version)
            self._delete(flt)

    def delete_collection(self, scope: Scope) -> None:
        """Delete every chunk of the scope."""
        self._delete(edge_filter(scope))

    def _delete(self, flt: qe.Filter) -> None:
        with self._writes, self._lock, _engine("delete"):
            doomed = self._shard.count(qe.CountRequest(filter=flt, exact=True))
            if doomed:
                self._census.deleting()
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
                if self._log is not None:
                    self._log.deletes.append(flt)
        self._count_changes(doomed)

    def _count_changes(self, n: int) -> None:
        with self._changed_lock:
            self._changed += n

    def chunk_ids(self, scope: Scope, document_id: str | None = None) -> list[str]:
        """Ids of every stored chunk in scope (of one document when given)."""
        flt = edge_filter(scope, document_ids=None if document_id is None else [document_id])
        return base.all_ids(lambda start: self._page(flt, False, start))

    def document_versions(
        self, scope: Scope, filters: Filter | None, start: str | None = None
    ) -> VersionsPage:
        """One page of the chunks in scope that match `filters`: their document versions."""
        flt = edge_filter(scope, filters=filters)
        records, after = self._page(flt, ["document_id", "version"], start)
        return base.versions_page(((r.id, r.payload or {}) for r in records), after)

    def _page(
        self, flt: qe.Filter, with_payload: bool | list[str], start: Any
    ) -> tuple[list[qe.Record], Any]:
        """Up to _SCROLL_PAGE matching points from the point id `start`, and the next id."""
        request = qe.ScrollRequest(
            offset=start, limit=_SCROLL_PAGE, filter=flt, with_payload=with_payload
        )
        with self._lock, _engine("read"):
            return self._shard.scroll(request)

    def maintain(self) -> None:
        """Rebuild the shard once enough was written or deleted since the last rebuild (less,
        once writes pause, when it holds deleted points: see `_due`); else return at once.
        The rebuild optimises a copy in a child process (see `edge_optimize`): writers wait
        while the files are copied, and every request waits while the optimised copy is
        opened, twice (to catch up, then to serve): about a second per 100k points. Blocks
        its caller for the whole run (minutes with dense vectors): call it in a thread.
        """
        if self._closing.is_set():
            return
        with self._lock:
            live = self._shard.info().points_count
        with self._changed_lock:
            changed = self._changed
        if not self._due(live, changed):
            return
        with self._maintaining:
            started = time.monotonic()
            self._rebuild_optimised()
            log.info(
                "store.maintained",
                extra={"points": live, "changed": changed, "s": time.monotonic() - started},
            )
        with self._changed_lock:
            self._changed -= changed

    def _due(self, live: int, changed: int) -> bool:
        """Enough changed since the last rebuild; or, once nothing changed since the previous
        call (writes paused), the shard holds deleted points that 1,000 changes or the last
        rebuild's replayed deletes left."""
        paused, self._changed_seen = changed == self._changed_seen, changed
        if changed >= max(_MAINTAIN_MIN, _MAINTAIN_RATIO * live):
            return True
        enough = changed >= _REBUILD_DELETED_MIN or self._replayed_deletes
        return paused and enough and not self._census.exact

    def _rebuild_optimised(self) -> None:
        copy = self._path / edge_optimize.NEW
        with self._writes:
            with self._lock, _engine("flush"):
                self._shard.flush()
            edge_optimize.copy_shard_files(self._path, copy)  # readers go on meanwhile
            self._log = edge_optimize.WriteLog()
            rewrite = not self._census.exact  # deleted points: the child drops them
        try:
            self._run_child(copy, rewrite)
            optimised = qe.EdgeShard.load(str(copy), edge_config(self._dense_dim))
            try:
                deleted = self._catch_up(optimised)
                with self._writes:  # the last round and the swap: writers wait
                    pending, self._log = self._log, None
                    if pending:
                        edge_optimize.replay(pending, self._retrieve, optimised)
                        deleted = deleted or bool(pending.deletes)
                    optimised.flush()
                    optimised.close()
                    (copy / IDF_EXACT).unlink(missing_ok=True)  # said below, once swapped
                    (copy / edge_compact.COMPLETE).touch()  # from here it holds every write
                    with self._lock, _engine("swap"):
                        self._shard.close()
                        edge_compact.swap_in(self._path, edge_optimize.NEW)
                        self._shard = self._open()
                        # The copy held no deleted point (rewritten if it did); what the
                        # catch-up deleted is marked deleted in it again.
                        if deleted:
                            self._census.deleting()
                        else:
                            self._census.rebuilt()
                        self._replayed_deletes = deleted
            finally:
                optimised.close()
        except BaseException:
            with self._writes:
                self._log = None
            if not (copy / edge_compact.COMPLETE).exists():
                shutil.rmtree(copy, ignore_errors=True)
            raise

    def _run_child(self, copy: Path, rewrite: bool) -> None:
        command = edge_optimize.child_command(copy, self._dense_dim, rewrite)
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _CHILD_TIMEOUT_S
        try:
            while child.poll() is None:
                if self._closing.wait(0.2) or time.monotonic() > deadline:
                    raise MaintenanceStopped("the store closed or the child ran too long")
        finally:
            if child.poll() is None:
                child.kill()
            _, err = child.communicate()
        if child.returncode != 0:
            tail = err.decode(errors="replace")[-2000:]
            log.warning("store.optimise_failed", extra={"code": child.returncode, "detail": tail})
            raise StoreError("optimising a copy of the embedded store failed")

    def _catch_up(self, optimised: qe.EdgeShard) -> bool:
        """Replay into the optimised copy what was written meanwhile, while writes go on;
        whether any of it deleted points."""
        deleted = False
        for _ in range(_CATCH_UP_ROUNDS):
            if self._closing.is_set():
                raise MaintenanceStopped("the store closed")
            with self._writes:
                pending, self._log = self._log, edge_optimize.WriteLog()
            if not pending:
                break
            edge_optimize.replay(pending, self._retrieve, optimised)
            deleted = deleted or bool(pending.deletes)
        return deleted

    def _retrieve(self, ids: list[Any]) -> list[qe.Record]:
        with self._lock, _engine("read"):
            return self._shard.retrieve(ids, True, True)

    def snapshot(self, target: Path) -> None:
        """Flush, then copy the shard's files. Edge 0.9 can restore snapshots that a server
        made but cannot make one, and nothing rewrites a flushed shard's files while writers
        wait (searches do not write; `maintain` optimises a copy elsewhere and swaps only
        with writers held), so the copy is consistent while searches go on."""
        with self._writes:  # not amid a compaction or a swap; searches go on while copying
            with self._lock, _engine("flush"):
                self._shard.flush()
            shutil.copytree(self._path, target, ignore=_MAINTENANCE_COPIES)

    def compact(self) -> None:
        """Rewrite the shard with its live points only, so that nothing of a deleted point
        stays on disk (segments and write-ahead log alike). Blocks every other use of the
        store while it runs (about as long as writing all points once): off the request path.
        """
        new = self._path / edge_compact.NEW
        with self._maintaining, self._writes, self._lock, _engine("compact"):
            self._shard.flush()
            edge_compact.copy_live(self._shard, new, edge_config(self._dense_dim), index_fields)
            self._shard.close()
            edge_compact.swap_in(self._path)
            self._shard = self._open()
            self._census = ScopeCensus.of(self._shard, self._path)  # deleted scopes leave it
            self._census.rebuilt()
        with self._changed_lock:
            self._changed = 0

    def close(self) -> None:
        self._closing.set()  # a maintain run in progress gives up, dropping its copy
        with self._maintaining, self._lock:
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
        return qe.Query.Nearest(vector, using=leg.using), self._census.idf_params(scope)


def _named(point: qe.ScoredPoint, name: str) -> Any:
    """The point's vector `name`, None when it has none (a chunk stored without one)."""
    vectors = point.vector
    return vectors.get(name) if isinstance(vectors, dict) else None


def _dense_of(point: qe.ScoredPoint) -> list[float] | None:
    return cast(list[float] | None, _named(point, base.DENSE_VECTOR))


def index_fields(shard: qe.EdgeShard) -> None:
    existing = shard.info().payload_schema
    for name in base.INDEXED_FIELDS:
        if name not in existing:
            params = qe.KeywordIndexParams(is_tenant=name == "tenant")
            shard.update(qe.UpdateOperation.create_field_index(name, params))
