"""An arq worker inside the API process, for small deployments (embedded store, Redis queue).

It runs in the API's event loop on the API's store, so queries see what it indexes, and it is
supervised: arq's worker ends when Redis goes away (a restart, a network cut), and this one is
then started again with backoff while the API keeps answering queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from arq.worker import Worker

from service.cancelling import stop_task
from service.config import Settings
from service.indexing.pipeline import Pipeline
from service.jobs.arq_job import WorkerCore, worker_options
from service.jobs.arq_queue import arq_redis
from service.redis_keys import REDIS_ERRORS
from service.store.base import Scope

log = logging.getLogger("citeline.worker")

_RESTART_MAX_S = 10.0
_CLOSE_S = 5.0  # the most closing a worker (cancelling its jobs, dropping Redis) may take


class LocalArqWorker:
    def __init__(self, settings: Settings, core: WorkerCore) -> None:
        self.settings = settings
        self.core = core
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def inflight(self) -> int:
        tasks = self.worker.tasks.values() if self.worker is not None else ()
        return sum(not t.done() for t in tasks)

    @property
    def pipeline(self) -> Pipeline:
        return self.core.pipeline

    async def delete_chunks(self, scope: Scope, document_ids: Sequence[str]) -> None:
        await self.core.pipeline.delete_chunks(scope, document_ids)

    async def start(self) -> None:
        try:
            await self.core.start()
        except REDIS_ERRORS as exc:  # Redis down at start: keep serving
            log.warning("worker.start_degraded", extra={"error": repr(exc)})
        self._task = asyncio.create_task(self._supervise(), name="worker.local")

    async def stop(self, wait_s: float | None = None) -> None:
        """Stop taking jobs, let running ones finish within `wait_s` (at most, and by default,
        job_completion_wait_s), cancel the rest (arq re-queues them), then close."""
        worker = self.worker
        limit = float(self.settings.job_completion_wait_s)
        wait = limit if wait_s is None else min(wait_s, limit)
        if worker is not None:
            worker.allow_pick_jobs = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while any(not t.done() for t in worker.tasks.values()):
                        await asyncio.sleep(0.05)
        await stop_task(self._task, grace_s=_CLOSE_S + 1, within_s=_CLOSE_S + 10)
        await self.core.stop()

    async def _supervise(self) -> None:
        delay = 0.5
        assert self.settings.redis_url is not None
        while True:
            redis = arq_redis(self.settings.redis_url, timeout_s=5.0)
            worker = Worker(
                **worker_options(self.settings),
                redis_pool=redis,
                handle_signals=False,
                ctx={"indexer": self.core.indexer},
            )
            self.worker = worker
            started = time.monotonic()
            try:
                await worker.main()
            except REDIS_ERRORS as exc:
                log.warning("worker.lost_redis", extra={"error": repr(exc), "retry_s": delay})
            finally:
                await _close(worker)
            if time.monotonic() - started > 60:
                delay = 0.5  # it ran well for a while: this is a new outage
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_S)


async def _close(worker: Worker) -> None:
    """Cancel the worker's jobs (arq re-queues them) and drop its connection, within bounds."""
    try:
        async with asyncio.timeout(_CLOSE_S):
            await asyncio.shield(worker.close())
    except REDIS_ERRORS as exc:
        log.warning("worker.close_failed", extra={"error": repr(exc)})
        for task in worker.tasks.values():
            task.cancel()
