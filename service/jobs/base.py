"""How an accepted document reaches the pipeline: the queue contract and its error.

Two queues implement it: `EmbeddedQueue` (jobs in the SQLite catalog, run by this process's
pipeline) and `ArqQueue` (jobs in the Redis catalog, run by arq workers, inside this process or
in `python -m workers`). Nothing outside `service.jobs` knows which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from service.catalog.base import Accepted, NewDocument
from service.store.base import Scope


class QueueUnavailable(Exception):
    """The queue did not take the jobs in time; the caller may retry after `retry_after`."""

    def __init__(self, detail: str, *, retry_after: float = 2.0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class JobQueue(Protocol):
    """What the API needs from a queue."""

    @property
    def inflight(self) -> int:
        """Jobs running in this process (0 when workers run elsewhere)."""
        ...

    async def accept(
        self, docs: Sequence[NewDocument], *, batch_id: str | None = None
    ) -> list[Accepted]:
        """Record the documents' jobs durably (in batch `batch_id` when given) and queue the
        new ones; answers promptly or raises `QueueUnavailable` (or `RegistryUnavailable`)."""
        ...

    async def delete_chunks(self, scope: Scope, document_ids: Sequence[str]) -> None:
        """Remove deleted documents' chunks from the store, in one call."""
        ...

    def backlog(self) -> dict[str, int]:
        """What waits before each pipeline stage in this process ({} if none runs here)."""
        ...

    def writes_paused(self) -> AbstractAsyncContextManager[None]:
        """A block in which this process writes nothing to the store (for backups)."""
        ...

    async def start(self) -> None: ...

    async def stop(self, wait_s: float | None = None) -> None:
        """Take no new job, let running ones finish for up to `wait_s` seconds (None: the
        queue's own setting), then interrupt the rest: they run again at the next start."""
        ...
