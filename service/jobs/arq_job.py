"""The arq side of indexing: the job function, its retry policy and the worker's options.

`index_document(ctx, job_id)` runs one job through the same `Pipeline` as the embedded mode
(all jobs of one worker share it, so embedding batches still mix documents). It lives in
`service/` because the API can run an arq worker in-process; `workers/` only wires a process.

Retry policy, per job (the registry's `tries` is the budget, not arq's counter):
- transient (429 with Retry-After, 5xx, timeouts, lost connections, a store or Redis error,
  the job's own timeout): `Retry(defer=backoff with jitter, at least Retry-After)` while
  `tries < job_max_tries`, then failed with the last reason;
- permanent (unparseable input, a 400 from the embedder): failed at once with the reason;
- another version of the same document running: `Retry` soon, without using a try;
- killed or cancelled mid-run: arq delivers the job again; each start counts a try, and a
  start beyond the budget fails the job, so no job is retried forever nor left open.
arq's own `max_tries` is only a backstop (lock waits use arq tries but not ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from arq import Retry
from arq.worker import func
from redis.asyncio import Redis

from service.cancelling import stop_task
from service.catalog.base import JobRegistry, RegistryUnavailable
from service.catalog.rows import JobRow
from service.config import Settings
from service.embeddings.dense import DenseEmbedder
from service.embeddings.sparse import Bm25Encoder
from service.indexing.pipeline import Outcome, Pipeline, pipeline_from_settings
from service.jobs.arq_names import FUNCTION, health_check_key
from service.jobs.arq_queue import arq_redis, dumps, loads, reconcile
from service.jobs.presence import Presence
from service.redis_keys import QUEUE_NAME, RECONCILE, REDIS_ERRORS
from service.store.base import VectorStore
from service.telemetry import logs, tracing
from service.tokens import encoding
from service.upstream import backoff_s

log = logging.getLogger("citeline.worker")

# Our timeout fires this much before arq's, leaving time to record the outcome.
TIMEOUT_MARGIN_S = 5.0
RECONCILE_EVERY_S = 30.0
_LOCK_RETRY_S = (0.3, 1.5)
_REDIS_DOWN: tuple[type[Exception], ...] = (RegistryUnavailable, *REDIS_ERRORS)


def arq_max_tries(settings: Settings) -> int:
    return max(100, 10 * settings.job_max_tries)


class Indexer:
    """Runs one delivery of one job; see the module docstring for the retry policy."""

    def __init__(
        self,
        registry: JobRegistry,
        pipeline: Pipeline,
        presence: Presence,
        *,
        timeout_s: float,
        max_tries: int,
        retry_base_s: float,
    ) -> None:
        self.registry, self.pipeline, self.presence = registry, pipeline, presence
        self.timeout_s, self.max_tries, self.retry_base_s = timeout_s, max_tries, retry_base_s

    async def run(self, job_id: str, arq_try: int) -> str:
        try:
            return await self._start(job_id)
        except _REDIS_DOWN as exc:
            log.warning("job.redis_unavailable", extra={"job_id": job_id, "error": repr(exc)})
            raise Retry(defer=backoff_s(arq_try, base=self.retry_base_s, cap=30)) from exc

    async def _start(self, job_id: str) -> str:
        # One script: the document's lock, this worker's running set, the try count.
        (claim,) = await self.registry.claim(
            [job_id], owner=self.presence.worker_id, lock_ttl_s=self.presence.lock_ttl_s
        )
        if claim.status == "locked":  # another version of the document runs: soon, no try
            raise Retry(defer=random.uniform(*_LOCK_RETRY_S))
        row = claim.row
        if row is None:
            if claim.status == "missing":
                log.warning("job.missing", extra={"job_id": job_id})
            return claim.status  # a repeated delivery of a finished job: nothing to do
        logs.update(tenant=row.tenant, collection=row.collection)  # this job's own task
        try:
            return await self._attempt(row, claim.tries)
        finally:
            await self.presence.release(row)

    async def _attempt(self, row: JobRow, tries: int) -> str:
        if tries > self.max_tries:
            last = f"; last error: {row.error}" if row.error else " (the last one was cut short)"
            return (await self.pipeline.fail(row, f"gave up after {tries - 1} tries{last}")).status
        try:
            async with asyncio.timeout(self.timeout_s):
                outcome = await self.pipeline.run(row)
        except TimeoutError:
            outcome = Outcome("retry", f"timed out after {self.timeout_s:g} s")
        except asyncio.CancelledError:
            with contextlib.suppress(RegistryUnavailable):
                await self.registry.requeue([row], "interrupted (the worker stopped); re-queued")
            raise
        if outcome.status != "retry":
            return outcome.status
        if tries >= self.max_tries:
            reason = f"gave up after {tries} tries: {outcome.error}"
            return (await self.pipeline.fail(row, reason)).status
        await self.registry.requeue([row], f"try {tries} failed, retrying: {outcome.error}")
        defer = backoff_s(tries, base=self.retry_base_s, retry_after=outcome.retry_after)
        log.info("job.retry", extra={"job_id": row.job_id, "tries": tries, "defer_s": defer})
        raise Retry(defer=defer)


async def index_document(
    ctx: dict[str, Any], job_id: str, trace: dict[str, str] | None = None
) -> str:
    """The arq job: index one registry job, by id. `trace` is the enqueuing request's trace
    context: the job's span joins that trace; what the job does depends on the id alone."""
    indexer: Indexer = ctx["indexer"]
    arq_try = int(ctx.get("job_try") or 1)
    with (
        logs.bound(job_id=job_id),
        tracing.job_span("index_document", trace, **{"citeline.job_id": job_id}) as span,
    ):
        status = await indexer.run(job_id, arq_try)
        if span is not None:
            span.set_attribute("citeline.job_status", status)
            span.set_attribute("citeline.job_try", arq_try)
        return status


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` (also the attributes of `workers.WorkerSettings`)."""
    timeout = settings.job_timeout_s + TIMEOUT_MARGIN_S
    tries = arq_max_tries(settings)
    return {
        "functions": [func(index_document, name=FUNCTION, timeout=timeout, max_tries=tries)],
        "queue_name": QUEUE_NAME,
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": timeout,
        "max_tries": tries,
        "keep_result": 3600,
        "poll_delay": settings.worker_poll_delay_s,
        "job_completion_wait": settings.job_completion_wait_s,
        "health_check_interval": settings.worker_heartbeat_s,
        "health_check_key": health_check_key(),
        "job_serializer": dumps,
        "job_deserializer": loads,
    }


class WorkerCore:
    """Everything a worker needs besides arq: pipeline, presence, indexer, reconciliation."""

    def __init__(
        self,
        settings: Settings,
        registry: JobRegistry,
        redis: Redis,
        store: VectorStore,
        sparse: Bm25Encoder,
        dense: DenseEmbedder | None,
    ) -> None:
        """`redis`: the catalog's connection (decode_responses=True), for worker presence."""
        assert settings.redis_url is not None
        self.settings, self.registry = settings, registry
        self.pipeline = pipeline_from_settings(settings, registry, store, sparse, dense)
        self.presence = Presence(
            redis,
            ttl_s=settings.worker_heartbeat_s,
            lock_ttl_s=settings.job_timeout_s + TIMEOUT_MARGIN_S + 30,
        )
        self.indexer = Indexer(
            registry,
            self.pipeline,
            self.presence,
            timeout_s=settings.job_timeout_s,
            max_tries=settings.job_max_tries,
            retry_base_s=settings.job_retry_base_s,
        )
        self._arq = arq_redis(settings.redis_url, timeout_s=5.0)
        self._reconciler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Load the tokenizer now (~0.5 s), not in the first job's time budget.
        await asyncio.to_thread(encoding)
        self.pipeline.start()
        await self.presence.start()
        self._reconciler = asyncio.create_task(self._reconcile_forever(), name="worker.reconcile")

    async def stop(self) -> None:
        await stop_task(self._reconciler)
        await self.presence.stop()
        await self.pipeline.stop()
        await self._arq.aclose()

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                # One worker at a time; the key's expiry paces everyone.
                me, pace_ms = self.presence.worker_id, int(RECONCILE_EVERY_S * 900)
                if await self._arq.set(RECONCILE, me, nx=True, px=pace_ms):
                    await reconcile(self._arq, grace_s=RECONCILE_EVERY_S)
            except REDIS_ERRORS as exc:
                log.warning("worker.reconcile_failed", extra={"error": repr(exc)})
            await asyncio.sleep(RECONCILE_EVERY_S)
