"""The job queue interface, and the embedded queue: jobs persisted in SQLite, run in-process.

The scaled-out queue (arq on Redis) is `service.indexing.queue_arq.ArqQueue`; nothing outside
these two modules knows which one runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from service.indexing.pipeline import Pipeline
from service.indexing.registry import DocKey, SqliteRegistry
from service.indexing.registry_base import Accepted, NewDocument
from service.indexing.registry_sql import JobRow
from service.store.base import Scope

log = logging.getLogger("citeline.queue")


_CLAIM_STEP = 64


class JobQueue(Protocol):
    """What the API needs from a queue."""

    @property
    def inflight(self) -> int:
        """Jobs running in this process (0 when workers run elsewhere)."""
        ...

    async def accept(self, docs: Sequence[NewDocument]) -> list[Accepted]:
        """Record the documents' jobs durably and queue the new ones; answers promptly or
        raises `service.errors.Unavailable`."""
        ...

    async def delete_chunks(self, scope: Scope, document_id: str) -> None:
        """Remove a deleted document's chunks from the store."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def doc_key(job: JobRow) -> DocKey:
    return (job.tenant, job.collection, job.document_id)


class EmbeddedQueue:
    """Claims queued jobs oldest first, one per document at a time, at most `max_inflight`."""

    def __init__(self, registry: SqliteRegistry, pipeline: Pipeline, max_inflight: int) -> None:
        self.registry = registry
        self.pipeline = pipeline
        pipeline.on_settled = self.settled
        self.max_inflight = max_inflight
        self._busy: set[DocKey] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """New jobs were recorded; start them when there is room."""
        self._wake.set()

    async def accept(self, docs: Sequence[NewDocument]) -> list[Accepted]:
        accepted = await self.registry.accept(docs)
        self.notify()
        return accepted

    async def delete_chunks(self, scope: Scope, document_id: str) -> None:
        await self.pipeline.delete_chunks(scope, document_id)

    @property
    def inflight(self) -> int:
        return len(self._busy)

    async def settled(self, job: JobRow) -> None:
        self._busy.discard(doc_key(job))
        self._wake.set()

    async def start(self) -> None:
        self.pipeline.start()
        self._task = asyncio.create_task(self._dispatch(), name="queue.dispatch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.pipeline.stop()
        # Jobs cut short go back to the queue; the next start resumes them.
        await self.registry.requeue_running()

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            # Claims go in small steps: each holds the registry thread, and a one-document
            # POST waiting behind it feels every millisecond.
            free = min(self.max_inflight - len(self._busy), _CLAIM_STEP)
            jobs = await self.registry.claim(free, frozenset(self._busy)) if free > 0 else []
            for job in jobs:
                self._busy.add(doc_key(job))
            for job in jobs:
                await self.pipeline.submit(job)
            if not jobs:
                await self._wake.wait()
