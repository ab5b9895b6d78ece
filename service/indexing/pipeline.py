"""The indexing pipeline: claimed jobs → chunk → embed in batches → upsert → finish.

Each stage is one asyncio task joined to the next by a bounded queue, so a slow embedder
back-pressures chunking and memory stays bounded whatever arrives. CPU-bound work (chunking,
BM25 encoding, store writes) runs in threads; batches mix chunks of many small documents.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from service.embeddings.dense import DenseEmbedder, PermanentEmbeddingError, TransientEmbeddingError
from service.embeddings.sparse import Bm25Encoder
from service.indexing.chunking import Chunk, chunk_text
from service.indexing.registry import Registry
from service.indexing.registry_sql import JobRow
from service.store.base import ChunkPoint, Scope, VectorStore

log = logging.getLogger("citeline.pipeline")


@dataclass(eq=False, slots=True)
class _Job:
    row: JobRow
    total: int = 0
    done: int = 0
    failed: bool = False

    @property
    def scope(self) -> Scope:
        return Scope(self.row.tenant, self.row.collection)


@dataclass(slots=True)
class _Batch:
    items: list[tuple[_Job, Chunk]]
    points: list[ChunkPoint] = field(default_factory=list)


class Pipeline:
    """Runs jobs handed to `submit`; awaits `on_settled(job)` once each job ends either way."""

    def __init__(
        self,
        *,
        registry: Registry,
        store: VectorStore,
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None,
        batch_size: int = 256,
        queue_size: int = 8,
        retry_budget_s: float = 60.0,
    ) -> None:
        self.registry, self.store, self.sparse, self.dense = registry, store, sparse, dense
        self.on_settled: Callable[[JobRow], Awaitable[None]] = _ignore
        self.batch_size = batch_size
        self.retry_budget_s = retry_budget_s
        self._jobs: asyncio.Queue[JobRow] = asyncio.Queue(maxsize=batch_size)
        self._to_embed: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=queue_size)
        self._to_store: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        # Upserts and clean-up deletes of the same document must not interleave.
        self._store_lock = asyncio.Lock()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._chunk_stage(), name="pipeline.chunk"),
            asyncio.create_task(self._embed_stage(), name="pipeline.embed"),
            asyncio.create_task(self._store_stage(), name="pipeline.store"),
        ]

    async def submit(self, job: JobRow) -> None:
        await self._jobs.put(job)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- stage 1: chunk ----------------------------------------------------------------------
    async def _chunk_stage(self) -> None:
        pending: list[tuple[_Job, Chunk]] = []
        while True:
            rows = [await self._jobs.get()]
            while not self._jobs.empty() and len(rows) < self.batch_size:
                rows.append(self._jobs.get_nowait())
            chunked = await asyncio.to_thread(_chunk_all, rows)
            totals: dict[str, int] = {}
            empty: list[_Job] = []
            for row, chunks_or_error in chunked:
                job = _Job(row)
                if isinstance(chunks_or_error, str):
                    await self._fail(job, chunks_or_error)
                    continue
                job.total = totals[row.job_id] = len(chunks_or_error)
                if not chunks_or_error:
                    empty.append(job)
                pending.extend((job, c) for c in chunks_or_error)
            await self.registry.progress("embedding", {}, totals)
            await self._finish(empty)
            while len(pending) >= self.batch_size:
                await self._to_embed.put(_Batch(pending[: self.batch_size]))
                pending = pending[self.batch_size :]
            if pending and self._jobs.empty():
                await self._to_embed.put(_Batch(pending))
                pending = []

    # -- stage 2: embed ----------------------------------------------------------------------
    async def _embed_stage(self) -> None:
        while True:
            batch = await self._to_embed.get()
            batch.items = [(j, c) for j, c in batch.items if not j.failed]
            if not batch.items:
                continue
            dense: Sequence[list[float] | None] = [None] * len(batch.items)
            if self.dense is not None:
                embedded = await self._embed_dense(batch)  # may drop refused documents
                if embedded is None:
                    continue
                dense = embedded
            texts = [c.text for _, c in batch.items]
            sparse = await asyncio.to_thread(self.sparse.encode_documents, texts)
            batch.points = [
                ChunkPoint(
                    document_id=j.row.document_id,
                    version=j.row.version,
                    chunk_index=c.index,
                    text=c.text,
                    start=c.start,
                    end=c.end,
                    sparse=s,
                    title=j.row.title,
                    source=j.row.source,
                    metadata=j.row.metadata,
                    dense=d,
                )
                for (j, c), s, d in zip(batch.items, sparse, dense, strict=True)
            ]
            await self._to_store.put(batch)

    async def _embed_dense(self, batch: _Batch) -> list[list[float] | None] | None:
        """Dense vectors for the batch; jobs whose input the provider refuses are failed alone."""
        jobs = list(dict.fromkeys(j for j, _ in batch.items))
        try:
            return list(await self._embed([c.text for _, c in batch.items]))
        except TransientEmbeddingError as exc:
            for job in jobs:
                await self._fail(job, f"embedding failed after retries: {exc}")
            return None
        except PermanentEmbeddingError as exc:
            if len(jobs) == 1:
                await self._fail(jobs[0], f"embedding failed: {exc}")
                return None
        # Several documents share the batch and one of them was refused: find which, one by one.
        vectors: dict[_Job, list[list[float]]] = {}
        for job in jobs:
            try:
                vectors[job] = await self._embed([c.text for j, c in batch.items if j is job])
            except (PermanentEmbeddingError, TransientEmbeddingError) as exc:
                await self._fail(job, f"embedding failed: {exc}")
        batch.items = [(j, c) for j, c in batch.items if j in vectors]
        flat: list[list[float] | None] = [v for job in vectors for v in vectors[job]]
        return flat or None

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        """Retry transient failures with exponential backoff and jitter, inside a time budget."""
        assert self.dense is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_budget_s
        delay = 0.5
        while True:
            try:
                return await self.dense.embed_documents(texts)
            except TransientEmbeddingError as exc:
                wait = max(exc.retry_after or 0.0, delay * random.uniform(0.5, 1.5))
                if loop.time() + wait > deadline:
                    raise
                log.warning("embedding.retry", extra={"wait_s": wait, "error": str(exc)})
                await asyncio.sleep(wait)
                delay = min(delay * 2, 30.0)

    # -- stage 3: store ----------------------------------------------------------------------
    async def _store_stage(self) -> None:
        while True:
            batch = await self._to_store.get()
            live = [
                (item, p)
                for item, p in zip(batch.items, batch.points, strict=True)
                if not item[0].failed
            ]
            by_scope: dict[Scope, list[ChunkPoint]] = {}
            for (job, _), point in live:
                by_scope.setdefault(job.scope, []).append(point)
            try:
                async with self._store_lock:
                    await asyncio.to_thread(_upsert_all, self.store, by_scope)
            except Exception as exc:
                for job in dict.fromkeys(j for (j, _), _p in live):
                    await self._fail(job, f"store write failed: {exc}")
                continue
            touched: dict[_Job, None] = {}
            for (job, _), _p in live:
                job.done += 1
                touched[job] = None
            await self.registry.progress(
                "upserting", {j.row.job_id: j.done for j in touched if j.done < j.total}, {}
            )
            await self._finish([job for job in touched if job.done == job.total])

    async def _finish(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        outcomes = await self.registry.finish([(job.row, job.total) for job in jobs])
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.needs_cleanup:
                await self._delete_other_versions(job, outcome.keep_version)
            await self.on_settled(job.row)

    async def _fail(self, job: _Job, error: str) -> None:
        if job.failed:
            return
        job.failed = True
        log.warning("job.failed", extra={"job_id": job.row.job_id, "error": error})
        keep = await self.registry.fail(job.row, error)
        await self._delete_other_versions(job, keep)
        await self.on_settled(job.row)

    async def _delete_other_versions(self, job: _Job, keep_version: str | None) -> None:
        await self.delete_chunks(job.scope, job.row.document_id, keep_version=keep_version)

    async def delete_chunks(
        self, scope: Scope, document_id: str, *, keep_version: str | None = None
    ) -> None:
        """Delete a document's chunks (but `keep_version`'s), never amid an upsert of them."""
        async with self._store_lock:
            await asyncio.to_thread(
                self.store.delete_document, scope, document_id, keep_version=keep_version
            )


async def _ignore(job: JobRow) -> None:
    return None


def _chunk_all(rows: list[JobRow]) -> list[tuple[JobRow, list[Chunk] | str]]:
    out: list[tuple[JobRow, list[Chunk] | str]] = []
    for row in rows:
        try:
            out.append((row, chunk_text(row.text, row.max_tokens, row.overlap_tokens)))
        except ValueError as exc:
            out.append((row, f"chunking failed: {exc}"))
    return out


def _upsert_all(store: VectorStore, by_scope: dict[Scope, list[ChunkPoint]]) -> None:
    for scope, points in by_scope.items():
        store.upsert(scope, points)
