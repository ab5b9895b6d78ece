"""The indexing pipeline: claimed jobs → parse → chunk → embed in batches → upsert → finish.

Each stage is one asyncio task joined to the next by a bounded buffer, so a slow embedder
back-pressures chunking and memory stays bounded whatever arrives. CPU-bound work (chunking,
BM25 encoding, store writes) runs in threads; the embed stage takes whatever chunks wait, up to
a batch, so batches mix chunks of many small documents however the jobs arrive.

Two ways in: `submit(job)` (the embedded queue; `on_settled` is called when the job ends, and
every failure is recorded) and `await run(job)` (a queue with retries of its own, e.g. arq:
returns the job's `Outcome`; a transient failure is handed back as `retry` unrecorded, and
cancelling the call abandons the job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from service.catalog.base import JobRegistry, RegistryUnavailable
from service.catalog.rows import JobRow
from service.config import Settings
from service.embeddings import languages
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.files import FileStore
from service.indexing.chunking import Chunk
from service.indexing.embedding import embed_items
from service.indexing.parse_stage import ParseStage
from service.indexing.units import Outcome, _Batch, _chunk_all, _Job, _upsert_all
from service.parsing.model import Limits
from service.parsing.process import ParserPool
from service.store.base import ChunkPoint, Scope, StoreError, VectorStore
from service.telemetry import metrics

__all__ = ["Outcome", "Pipeline", "pipeline_from_settings"]

log = logging.getLogger("citeline.pipeline")


class Pipeline:
    """Runs jobs handed to `submit`; awaits `on_settled(job)` once each job ends either way."""

    def __init__(
        self,
        *,
        registry: JobRegistry,
        store: VectorStore,
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None,
        files: FileStore,
        parser: ParserPool,
        parse_workers: int = 2,
        batch_size: int = 256,
        queue_size: int = 8,
        retry_budget_s: float = 60.0,
    ) -> None:
        self.registry, self.store, self.sparse, self.dense = registry, store, sparse, dense
        self.files = files
        self.on_settled: Callable[[JobRow], Awaitable[None]] = _ignore
        self.batch_size = batch_size
        self.retry_budget_s = retry_budget_s
        self._parse = ParseStage(registry, files, parser, parse_workers)
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue(maxsize=batch_size)
        self._ready: asyncio.Queue[_Job] = asyncio.Queue(maxsize=batch_size)  # parsed
        self._chunks: list[tuple[_Job, Chunk]] = []  # chunked, waiting for the embed stage
        self._chunks_max = batch_size * queue_size
        self._chunks_ready = asyncio.Condition()
        self._chunker_idle = False
        self._to_store: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        # Upserts and clean-up deletes of the same document must not interleave.
        self._store_lock = asyncio.Lock()
        self._waiting: set[_Job] = set()
        self._stopping = threading.Event()  # read by the chunking thread

    def backlog(self) -> dict[str, int]:
        """What waits before each stage now: jobs to parse (files waiting or being parsed; text
        passes straight on), jobs to chunk, chunks to embed, batches to store."""
        return {
            "parse": self._jobs.qsize() + self._parse.active,
            "chunk": self._ready.qsize(),
            "embed": len(self._chunks),
            "upsert": self._to_store.qsize(),
        }

    @contextlib.asynccontextmanager
    async def writes_paused(self) -> AsyncIterator[None]:
        """No store write (upsert or delete) runs inside the block: for a consistent backup."""
        async with self._store_lock:
            yield

    def start(self) -> None:
        parse = self._parse.run(self._jobs, self._ready, self._fail_permanently)
        self._tasks = [
            asyncio.create_task(parse, name="pipeline.parse"),
            asyncio.create_task(self._chunk_stage(), name="pipeline.chunk"),
            asyncio.create_task(self._embed_stage(), name="pipeline.embed"),
            asyncio.create_task(self._store_stage(), name="pipeline.store"),
        ]

    async def submit(self, job: JobRow) -> None:
        await self._jobs.put(_Job(job))

    async def run(self, row: JobRow) -> Outcome:
        """Run one job to its end; cancelling the call abandons the job (nothing is recorded)."""
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        job = _Job(row, waiter=waiter)
        self._waiting.add(job)
        try:
            await self._jobs.put(job)
            return await waiter
        finally:
            job.closed = True  # finished, or abandoned: later stages skip its chunks
            self._waiting.discard(job)

    async def fail(self, row: JobRow, error: str) -> Outcome:
        """Fail a job that is not in the pipeline (e.g. out of tries), cleaning up its chunks."""
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._fail(_Job(row, waiter=waiter), error, transient=False)
        return waiter.result()

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._parse.stop()
        for job in list(self._waiting):
            if job.waiter is not None and not job.waiter.done():
                job.waiter.cancel()

    # -- stage 1: chunk ----------------------------------------------------------------------
    async def _chunk_stage(self) -> None:
        while True:
            if self._ready.empty():  # nothing more to chunk now: let the embed stage go
                async with self._chunks_ready:
                    self._chunker_idle = True
                    self._chunks_ready.notify_all()
            jobs = [await self._ready.get()]
            self._chunker_idle = False
            while not self._ready.empty() and len(jobs) < self.batch_size:
                jobs.append(self._ready.get_nowait())
            jobs = [j for j in jobs if not j.closed]
            started = time.perf_counter()
            texts_to = None if self.registry.keeps_texts else self.files
            chunked = await asyncio.to_thread(_chunk_all, jobs, texts_to, self._stopping)
            metrics.INGEST_STAGE.labels("chunk").observe(time.perf_counter() - started)
            totals: dict[str, int] = {}
            empty: list[_Job] = []
            chunks: list[tuple[_Job, Chunk]] = []
            for job, chunks_or_error in chunked:
                if isinstance(chunks_or_error, str):
                    await self._fail(job, chunks_or_error, transient=False)
                    continue
                job.total = totals[job.row.job_id] = len(chunks_or_error)
                if self.dense is not None:
                    job.embedding_tokens = sum(c.tokens for c in chunks_or_error)
                if not chunks_or_error:
                    empty.append(job)
                chunks.extend((job, c) for c in chunks_or_error)
            await self._progress("embedding", {}, totals)
            await self._finish(empty)
            async with self._chunks_ready:  # back-pressure: a bounded number of waiting chunks
                await self._chunks_ready.wait_for(lambda: len(self._chunks) < self._chunks_max)
                self._chunks.extend(chunks)
                self._chunks_ready.notify_all()

    # -- stage 2: embed ----------------------------------------------------------------------
    async def _embed_stage(self) -> None:
        while True:
            # A full batch, or whatever waits once the chunker is idle: while an embedding call
            # runs, the chunks of jobs arriving one by one (as arq delivers them) gather into
            # the next batch instead of going out one small batch each.
            async with self._chunks_ready:
                await self._chunks_ready.wait_for(self._batch_ready)
                batch = _Batch(self._chunks[: self.batch_size])
                del self._chunks[: self.batch_size]
                self._chunks_ready.notify_all()
            batch.items = [(j, c) for j, c in batch.items if not j.closed]
            if not batch.items:
                continue
            started = time.perf_counter()
            dense: Sequence[list[float] | None] = [None] * len(batch.items)
            if self.dense is not None:
                embedded = await self._embed_dense(batch)  # may drop refused documents
                if embedded is None:
                    continue
                dense = embedded
            langs = [languages.of_metadata(j.row.metadata) for j, _ in batch.items]
            sparse = await asyncio.to_thread(self.sparse.encode_documents, _contexts(batch), langs)
            metrics.INGEST_STAGE.labels("embed").observe(time.perf_counter() - started)
            batch.points = [
                ChunkPoint(
                    document_id=j.row.document_id,
                    version=j.row.version,
                    chunk_index=c.index,
                    text=c.text,
                    start=c.start,
                    end=c.end,
                    start_utf16=c.start_utf16,
                    end_utf16=c.end_utf16,
                    sparse=s,
                    title=j.title,
                    source=j.row.source,
                    metadata=j.row.metadata,
                    dense=d,
                    page=c.page,
                    page_end=c.page_end,
                    page_label=c.page_label,
                    section=c.section,
                )
                for (j, c), s, d in zip(batch.items, sparse, dense, strict=True)
            ]
            await self._to_store.put(batch)

    async def _embed_dense(self, batch: _Batch) -> list[list[float] | None] | None:
        """Dense vectors for the batch; jobs whose input the provider refuses are failed alone."""
        assert self.dense is not None
        kept, vectors, refused = await embed_items(
            self.dense, batch.items, self.retry_budget_s, _contexts
        )
        for r in refused:
            await self._fail(r.job, r.error, transient=r.transient, retry_after=r.retry_after)
        batch.items = kept
        return list(vectors) or None

    def _batch_ready(self) -> bool:
        return len(self._chunks) >= self.batch_size or (bool(self._chunks) and self._chunker_idle)

    # -- stage 3: store ----------------------------------------------------------------------
    async def _store_stage(self) -> None:
        while True:
            batch = await self._to_store.get()
            live = [
                (item, p)
                for item, p in zip(batch.items, batch.points, strict=True)
                if not item[0].closed
            ]
            by_scope: dict[Scope, list[ChunkPoint]] = {}
            for (job, _), point in live:
                by_scope.setdefault(job.scope, []).append(point)
            try:
                async with self._store_lock:
                    started = time.perf_counter()
                    await asyncio.to_thread(_upsert_all, self.store, by_scope)
                    metrics.INGEST_STAGE.labels("upsert").observe(time.perf_counter() - started)
            except StoreError as exc:
                for job in dict.fromkeys(j for (j, _), _p in live):
                    await self._fail(job, f"store write failed: {exc}")
                continue
            touched: dict[_Job, None] = {}
            for (job, _), _p in live:
                job.done += 1
                touched[job] = None
            await self._progress(
                "upserting", {j.row.job_id: j.done for j in touched if j.done < j.total}, {}
            )
            await self._finish([job for job in touched if job.done == job.total])

    async def _progress(self, stage: str, done: dict[str, int], totals: dict[str, int]) -> None:
        if not done and not totals:
            return
        try:
            await self.registry.progress(stage, done, totals)
        except RegistryUnavailable:  # progress is for display; the final state is what counts
            log.warning("job.progress_lost", extra={"stage": stage})

    async def _finish(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if not job.closed]
        if not jobs:
            return
        try:
            outcomes = await self.registry.finish(
                [(job.row, job.total, job.embedding_tokens) for job in jobs]
            )
        except RegistryUnavailable as exc:
            for job in jobs:
                await self._fail(job, f"could not record completion: {exc.detail}")
            return
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.needs_cleanup:
                await self._delete_other_versions(job, outcome.keep_version, outcome.latest_version)
            job.closed = True
            metrics.CHUNKS_INDEXED.labels(metrics.tenant_label(job.row.tenant)).inc(job.total)
            if self.dense is not None and job.embedding_tokens:
                tokens = metrics.EMBEDDING_TOKENS.labels(self.dense.model, "index")
                tokens.inc(job.embedding_tokens)
            await self._settle(job, Outcome("completed"))

    async def _fail_permanently(self, job: _Job, error: str) -> None:
        await self._fail(job, error, transient=False)

    async def _fail(
        self, job: _Job, error: str, *, transient: bool = True, retry_after: float | None = None
    ) -> None:
        """Fail a job. A transient failure of a `run` job goes back to its caller, unrecorded."""
        if job.closed:
            return
        job.closed = True
        if transient and job.waiter is not None:
            log.info("job.retryable", extra={**_job_fields(job.row), "error": error})
            await self._settle(job, Outcome("retry", error, retry_after))
            return
        log.warning("job.closed", extra={**_job_fields(job.row), "error": error})
        try:
            outcome = await self.registry.fail(job.row, error)
        except RegistryUnavailable as exc:
            await self._settle(job, Outcome("retry", f"{error}; not recorded: {exc.detail}"))
            return
        if outcome.needs_cleanup:
            await self._delete_other_versions(job, outcome.keep_version, outcome.latest_version)
        await self._settle(job, Outcome("failed", error))

    async def _settle(self, job: _Job, outcome: Outcome) -> None:
        metrics.JOBS_FINISHED.labels(outcome.status).inc()
        if job.waiter is not None and not job.waiter.done():
            job.waiter.set_result(outcome)
        await self.on_settled(job.row)

    async def _delete_other_versions(
        self, job: _Job, keep_version: str | None, latest_version: str | None
    ) -> None:
        """Chunks of every version but the served one; files of every version but the served
        and the newest (whose job may still wait for its original); all when it is deleted."""
        await self.delete_chunks(job.scope, [job.row.document_id], keep_version=keep_version)
        keep = {v for v in (keep_version, latest_version) if v is not None}
        await asyncio.to_thread(self.files.remove_versions, job.scope, job.row.document_id, keep)

    async def delete_chunks(
        self, scope: Scope, document_ids: Sequence[str], *, keep_version: str | None = None
    ) -> None:
        """Delete the documents' chunks (but `keep_version`'s) in one store call, never amid
        an upsert of them."""
        async with self._store_lock:
            await asyncio.to_thread(
                self.store.delete_documents, scope, document_ids, keep_version=keep_version
            )


async def _ignore(job: JobRow) -> None:
    return None


def _job_fields(row: JobRow) -> dict[str, str]:
    """Log fields of a job: the pipeline's stages serve many jobs, so each line names its own."""
    return {"job_id": row.job_id, "tenant": row.tenant, "collection": row.collection}


def _contexts(items: Sequence[tuple[_Job, Chunk]] | _Batch) -> list[str]:
    """What retrieval encodes for each chunk: its section's heading path, then its text."""
    pairs = items.items if isinstance(items, _Batch) else items
    return [f"{c.section}\n{c.text}" if c.section else c.text for _, c in pairs]


def pipeline_from_settings(
    settings: Settings,
    registry: JobRegistry,
    store: VectorStore,
    sparse: Bm25Encoder,
    dense: DenseEmbedder | None,
) -> Pipeline:
    """The pipeline of either queue. Its retry budget (embedding retries inside one try) is
    CITELINE_EMBED_RETRY_BUDGET_S; with arq it is also at most half the job's timeout, so that
    a try still ends in time to be retried by arq instead of timing out; so is the parse time
    limit, so that a file that hangs its parser fails with that reason, not a job timeout."""
    budget, parse_timeout = settings.embed_retry_budget_s, settings.parse_timeout_s
    if settings.queue == "arq":
        budget = min(budget, settings.job_timeout_s / 2)
        parse_timeout = min(parse_timeout, settings.job_timeout_s / 2)
    limits = Limits(
        max_pages=settings.max_file_pages,
        max_chars=settings.max_document_chars,
        max_uncompressed_bytes=settings.max_file_uncompressed_bytes,
    )
    parser = ParserPool(settings.parse_workers, parse_timeout, settings.parse_memory_mb, limits)
    return Pipeline(
        registry=registry,
        store=store,
        sparse=sparse,
        dense=dense,
        files=FileStore(settings.files_root),
        parser=parser,
        parse_workers=settings.parse_workers,
        batch_size=settings.embed_batch_size,
        queue_size=settings.pipeline_queue_size,
        retry_budget_s=budget,
    )
