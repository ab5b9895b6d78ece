"""The scaled-out job queue: jobs recorded in the Redis registry, run by arq workers.

arq stays behind this module and `arq_job`: the API calls `JobQueue.accept`, workers run
`index_document(ctx, job_id)`. A job is enqueued by name with `_job_id` = the registry's job
id, which is content-addressed: posting the same content again finds the same job, and arq
refuses a second copy of a job id it still holds. Job arguments are the job id only, and arq's
envelopes are JSON, not pickle (nobody who can write to Redis can make a worker run code).

Delivery is at least once; the effect is once: the registry fences every state change by the
attempt's try number and the store's point ids are deterministic. A job the registry holds
open but arq lost (the API died between the two writes, arq gave up, its key expired) is
found and enqueued again by `reconcile`, which workers run periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix

from service.catalog.base import Accepted, JobRegistry, NewDocument
from service.jobs.arq_names import FUNCTION
from service.jobs.base import QueueUnavailable
from service.redis_keys import OPEN_JOBS, QUEUE_NAME, REDIS_ERRORS, job_key
from service.store.base import Scope, VectorStore
from service.telemetry import tracing

if TYPE_CHECKING:
    from service.indexing.pipeline import Pipeline

log = logging.getLogger("citeline.queue")

_ENQUEUE_CONCURRENCY = 16


def dumps(data: dict[str, Any]) -> bytes:
    """arq envelope serializer: JSON; an exception result is stored as its repr."""
    return json.dumps(data, default=repr).encode()


def loads(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(raw)
    return value


def arq_redis(url: str, *, timeout_s: float) -> ArqRedis:
    """An arq connection whose every command is bounded (arq's own settings cannot say so)."""
    redis: ArqRedis = ArqRedis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
    )
    redis.job_serializer, redis.job_deserializer = dumps, loads
    redis.default_queue_name = QUEUE_NAME
    return redis


async def enqueue(
    redis: ArqRedis,
    job_ids: Iterable[str],
    *,
    fresh: set[str],
    trace: dict[str, str] | None = None,
) -> int:
    """Enqueue each job under its own id; `fresh` ones first lose any stale arq result (a failed
    job posted again has the same id). Returns how many were new to arq.

    `trace`: the enqueuing request's trace context (W3C headers), passed as the job's `trace`
    argument so the job's span joins the request's trace; it changes nothing the job does."""
    gate = asyncio.Semaphore(_ENQUEUE_CONCURRENCY)
    extra: dict[str, Any] = {"trace": trace} if trace else {}

    async def one(job_id: str) -> bool:
        async with gate:
            if job_id in fresh:
                await redis.delete(result_key_prefix + job_id)
            return await redis.enqueue_job(FUNCTION, job_id, _job_id=job_id, **extra) is not None

    return sum(await asyncio.gather(*(one(j) for j in dict.fromkeys(job_ids))))


async def reconcile(redis: ArqRedis, *, grace_s: float, batch: int = 1000) -> list[str]:
    """Enqueue again every open job that arq holds neither queued nor running, once it is
    older than `grace_s` (younger ones may be between the API's two writes)."""
    lost: list[str] = []
    now, cursor = time.time(), 0
    while True:
        cursor, members = await redis.sscan(OPEN_JOBS, cursor, count=batch)
        ids = [m.decode() for m in members]
        if ids:
            async with redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
                    pipe.hmget(job_key(job_id), ["status", "created_at"])
                found = await pipe.execute()
            for job_id, held, (status, created) in zip(ids, found[::2], found[1::2], strict=True):
                old = created is not None and now - float(created) > grace_s
                if not held and status in (b"queued", b"running") and old:
                    lost.append(job_id)
        if cursor == 0:
            break
    if lost:
        log.warning("queue.reconciled", extra={"jobs": lost})
        await enqueue(redis, lost, fresh=set(lost))
    return lost


class LocalWorker(Protocol):
    """An arq worker inside the API process (small deployments with an embedded store)."""

    @property
    def inflight(self) -> int: ...

    @property
    def pipeline(self) -> Pipeline: ...

    async def delete_chunks(self, scope: Scope, document_ids: Sequence[str]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self, wait_s: float | None = None) -> None: ...


class ArqQueue:
    """`JobQueue` on arq: accept = registry script + enqueue, within `deadline_s` in all."""

    def __init__(
        self,
        registry: JobRegistry,
        redis: ArqRedis,
        store: VectorStore,
        *,
        deadline_s: float,
        worker: LocalWorker | None = None,
    ) -> None:
        self.registry, self.redis, self.store = registry, redis, store
        self.deadline_s = deadline_s
        self.worker = worker

    @property
    def inflight(self) -> int:
        return self.worker.inflight if self.worker is not None else 0

    def backlog(self) -> dict[str, int]:
        return self.worker.pipeline.backlog() if self.worker is not None else {}

    def writes_paused(self) -> AbstractAsyncContextManager[None]:
        # Without a local worker this process writes only deletes; a server store's own
        # snapshot is consistent by itself.
        if self.worker is None:
            return contextlib.nullcontext()
        return self.worker.pipeline.writes_paused()

    async def accept(
        self, docs: Sequence[NewDocument], *, batch_id: str | None = None
    ) -> list[Accepted]:
        try:
            async with asyncio.timeout(self.deadline_s):
                accepted = await self.registry.accept(docs, batch_id=batch_id)
                await enqueue(
                    self.redis,
                    [a.job_id for a in accepted if a.status in ("queued", "running")],
                    fresh={a.job_id for a in accepted if not a.duplicate},
                    trace=tracing.carrier(),
                )
        except REDIS_ERRORS as exc:
            # Jobs the registry took but arq did not are enqueued by the client's retry (the
            # same content finds the same job) or, failing that, by `reconcile`.
            raise QueueUnavailable(
                f"the job queue (Redis) did not answer: {type(exc).__name__}; retry later",
                retry_after=2,
            ) from exc
        return accepted

    async def delete_chunks(self, scope: Scope, document_ids: Sequence[str]) -> None:
        if self.worker is not None:  # the local pipeline orders this after its own writes
            await self.worker.delete_chunks(scope, document_ids)
        else:
            await asyncio.to_thread(self.store.delete_documents, scope, document_ids)

    async def start(self) -> None:
        if self.worker is not None:
            await self.worker.start()

    async def stop(self, wait_s: float | None = None) -> None:
        if self.worker is not None:
            await self.worker.stop(wait_s)
        await self.redis.aclose()
