"""Which arq workers are alive, what they run, and per-document locks that die with them.

arq alone leaves the job of a SIGKILLed worker stuck until its in-progress key expires (the
function timeout + 10 s). Here each worker refreshes a liveness key every third of
`ttl_s` and lists the jobs it runs; any worker that finds a listed worker's liveness key gone
deletes that worker's in-progress keys, so its jobs start again on the next poll, a few
seconds after the crash. Wrongly declaring a worker dead (its loop stalled for `ttl_s`) is
safe: the registry fences every state change by the attempt's try number, so only the newest
attempt can finish or fail a job, and both attempts write the same point ids.

A document lock (owner = worker id + job id) keeps two versions of one document from running
at once; the registry's START script takes it (a lock whose owner is dead is taken over; each
expires on its own after `lock_ttl_s` in any case) and `release` gives it back.

Keys: see `service.redis_keys` (cl:worker:<id>, cl:workers, cl:worker-jobs:<id>, cl:lock:...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from service.cancelling import stop_task
from service.catalog.rows import JobRow
from service.redis_keys import REDIS_ERRORS, WORKERS, lock_key, worker_jobs_key, worker_key
from service.store.base import Scope

log = logging.getLogger("citeline.worker")

_RECLAIM = r"""
local out = {}
for _, w in ipairs(redis.call('SMEMBERS', 'cl:workers')) do
  if redis.call('EXISTS', 'cl:worker:' .. w) == 0 then
    for _, j in ipairs(redis.call('SMEMBERS', 'cl:worker-jobs:' .. w)) do
      redis.call('DEL', ARGV[1] .. j)
      table.insert(out, j)
    end
    redis.call('DEL', 'cl:worker-jobs:' .. w)
    redis.call('SREM', 'cl:workers', w)
  end
end
return out
"""

_RELEASE = r"""
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
"""


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Presence:
    """One worker's liveness key, its running-jobs list and its document locks."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_s: float,
        lock_ttl_s: float,
        worker_id: str | None = None,
        queue_prefix: str = in_progress_key_prefix,
    ) -> None:
        self.redis = redis  # decode_responses=True
        self.worker_id = worker_id or new_worker_id()
        self.ttl_s, self.lock_ttl_s = ttl_s, lock_ttl_s
        self._in_progress_prefix = queue_prefix
        self._reclaim = redis.register_script(_RECLAIM)
        self._release = redis.register_script(_RELEASE)
        self._task: asyncio.Task[None] | None = None

    @property
    def _jobs_key(self) -> str:
        return worker_jobs_key(self.worker_id)

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._beat_forever(), name="worker.heartbeat")

    async def stop(self) -> None:
        """A clean exit: nothing to reclaim (arq re-queues the jobs it cancelled itself)."""
        await stop_task(self._task)
        with contextlib.suppress(*REDIS_ERRORS):
            async with asyncio.timeout(2):
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(worker_key(self.worker_id), self._jobs_key)
                    pipe.srem(WORKERS, self.worker_id)
                    await pipe.execute()

    async def beat(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(worker_key(self.worker_id), "1", px=int(self.ttl_s * 1000))
            pipe.sadd(WORKERS, self.worker_id)
            await pipe.execute()
        reclaimed: list[str] = await self._reclaim(keys=[], args=[self._in_progress_prefix])
        if reclaimed:
            log.warning("worker.reclaimed", extra={"jobs": reclaimed})

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                async with asyncio.timeout(self.ttl_s / 3):
                    await self.beat()
            except REDIS_ERRORS as exc:
                log.warning("worker.heartbeat_failed", extra={"error": repr(exc)})

    async def release(self, job: JobRow) -> None:
        """Release the document lock and leave the running set (both taken by the registry's
        START script with this worker as owner)."""
        key = lock_key(Scope(job.tenant, job.collection), job.document_id)
        with contextlib.suppress(*REDIS_ERRORS):
            async with asyncio.timeout(2):
                async with self.redis.pipeline(transaction=False) as pipe:
                    await self._release(keys=[], args=[key, self.owner(job)], client=pipe)
                    pipe.srem(self._jobs_key, job.job_id)
                    await pipe.execute()

    def owner(self, job: JobRow) -> str:
        return f"{self.worker_id}|{job.job_id}"
