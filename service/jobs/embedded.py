"""The embedded queue: jobs recorded in the catalog (SQLite), run by this process's pipeline.

The queue keeps the ids of queued jobs in memory, per document in arrival order; the catalog is
what makes them durable (a 202 means the job is on disk), and at start the queue reads back the
jobs a stop or a crash left waiting. One job per document runs at a time, so two versions of
one document never interleave their writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from service.cancelling import stop_task
from service.catalog.base import Accepted, DocKey, JobRegistry, NewDocument
from service.catalog.rows import JobRow
from service.indexing.pipeline import Pipeline
from service.store.base import Scope

log = logging.getLogger("citeline.queue")

# Claims go in small steps: each holds the catalog's thread, and a one-document POST waiting
# behind it feels every millisecond.
CLAIM_STEP = 64
RESUME_LIMIT = 10_000_000
_STOP_POLL_S = 0.02


def doc_key(job: JobRow) -> DocKey:
    return (job.tenant, job.collection, job.document_id)


class EmbeddedQueue:
    """Claims queued jobs oldest first, one per document at a time, at most `max_inflight`."""

    def __init__(self, registry: JobRegistry, pipeline: Pipeline, max_inflight: int) -> None:
        self.registry = registry
        self.pipeline = pipeline
        pipeline.on_settled = self.settled
        self.max_inflight = max_inflight
        self._pending: dict[DocKey, list[str]] = {}  # queued job ids per document, in order
        self._running: dict[DocKey, JobRow] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def accept(
        self, docs: Sequence[NewDocument], *, batch_id: str | None = None
    ) -> list[Accepted]:
        accepted = await self.registry.accept(docs, batch_id=batch_id)
        for doc, a in zip(docs, accepted, strict=True):
            if not a.duplicate:  # a duplicate is the same job, already queued or done
                key = (doc.scope.tenant, doc.scope.collection, a.document_id)
                self._pending.setdefault(key, []).append(a.job_id)
        self._wake.set()
        return accepted

    async def delete_chunks(self, scope: Scope, document_ids: Sequence[str]) -> None:
        await self.pipeline.delete_chunks(scope, document_ids)

    @property
    def inflight(self) -> int:
        return len(self._running)

    def backlog(self) -> dict[str, int]:
        return self.pipeline.backlog()

    def writes_paused(self) -> AbstractAsyncContextManager[None]:
        return self.pipeline.writes_paused()

    async def settled(self, job: JobRow) -> None:
        self._running.pop(doc_key(job), None)
        self._wake.set()

    async def start(self) -> None:
        for waiting in await self.registry.waiting(RESUME_LIMIT):
            self._pending.setdefault(waiting.document, []).append(waiting.job_id)
        if self._pending:
            log.info("queue.resumed", extra={"documents": len(self._pending)})
        self.pipeline.start()
        self._task = asyncio.create_task(self._dispatch(), name="queue.dispatch")

    async def stop(self, wait_s: float | None = None) -> None:
        """No new claims; running jobs get `wait_s` (default 0) to finish, the rest are
        queued again and resumed at the next start."""
        await stop_task(self._task)
        deadline = asyncio.get_running_loop().time() + (wait_s or 0.0)
        while self._running and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(_STOP_POLL_S)
        await self.pipeline.stop()
        # Jobs cut short go back to the queue; the next start resumes them.
        await self.registry.requeue(list(self._running.values()), "interrupted by a stop")
        self._running.clear()

    def _next_ids(self, limit: int) -> list[str]:
        """Up to `limit` job ids, the oldest of each document that has none running."""
        ids: list[str] = []
        emptied: list[DocKey] = []
        for key, queue in self._pending.items():  # documents with a job running are skipped,
            if len(ids) >= limit:  # and there are at most max_inflight of them
                break
            if key in self._running:
                continue
            ids.append(queue.pop(0))
            if not queue:
                emptied.append(key)
        for key in emptied:
            del self._pending[key]
        return ids

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            free = min(self.max_inflight - len(self._running), CLAIM_STEP)
            ids = self._next_ids(free) if free > 0 else []
            claims = await self.registry.claim(ids) if ids else []
            rows = [c.row for c in claims if c.row is not None]
            for row in rows:
                self._running[doc_key(row)] = row
            for row in rows:
                await self.pipeline.submit(row)
            if not ids:
                await self._wake.wait()
