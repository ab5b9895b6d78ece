"""The job registry in Redis, for the scaled-out mode: the API and any number of arq workers
share documents, jobs (with their text, so a worker needs only the job id) and active versions.

Same semantics as the SQLite registry; every state change is one Lua script (see
`registry_lua`). Each call is bounded by `timeout_s` and raises `RegistryUnavailable` when
Redis does not answer, so the API turns a stalled Redis into a prompt 503.

The query path's lookups (`active_versions`) degrade instead of failing: see
`active_versions.ActiveVersions`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.indexing import registry_lua as lua
from service.indexing.active_versions import ActiveVersions
from service.indexing.registry_base import (
    Accepted,
    Finalized,
    NewDocument,
    RegistryUnavailable,
    content_version,
    derived_document_id,
)
from service.indexing.registry_sql import JobRow, doc_state
from service.store.base import Scope

log = logging.getLogger("citeline.registry")

_JOB_FIELDS = [f for f in JobRow.__dataclass_fields__ if f != "text"]


def scope_key(scope: Scope) -> str:
    return f"{scope.tenant}\x1f{scope.collection}"


def job_key(job_id: str) -> str:
    return f"cl:job:{job_id}"


OPEN_JOBS = "cl:open"


def _opt_int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def job_from_hash(h: dict[str, Any]) -> JobRow:
    return JobRow(
        job_id=h["job_id"],
        tenant=h["tenant"],
        collection=h["collection"],
        document_id=h["document_id"],
        version=h["version"],
        status=h["status"],
        stage=h["stage"],
        chunks_total=_opt_int(h.get("chunks_total")),
        chunks_done=int(h.get("chunks_done") or 0),
        embedding_tokens=int(h.get("embedding_tokens") or 0),
        tries=int(h.get("tries") or 0),
        error=h.get("error"),
        superseded_by=h.get("superseded_by"),
        created_at=float(h["created_at"]),
        started_at=_opt_float(h.get("started_at")),
        finished_at=_opt_float(h.get("finished_at")),
        text=h.get("text") or "",
        title=json.loads(h["title"]),
        source=json.loads(h["source"]),
        metadata=json.loads(h["metadata"]),
        max_tokens=int(h["max_tokens"]),
        overlap_tokens=int(h["overlap_tokens"]),
    )


async def _r(awaitable: Any) -> Any:
    """Await a redis-py command (its stubs type results as `Awaitable[T] | T`)."""
    return await awaitable


class RedisRegistry:
    def __init__(
        self,
        redis: Redis,
        *,
        timeout_s: float = 1.0,
        query_timeout_s: float = 0.25,
        breaker_s: float = 2.0,
    ) -> None:
        self.redis = redis  # decode_responses=True
        self.timeout_s, self.query_timeout_s, self.breaker_s = timeout_s, query_timeout_s, breaker_s
        self.queued = 0
        self._scripts = {
            name: redis.register_script(getattr(lua, name))
            for name in ("ACCEPT", "START", "PROGRESS", "FINISH", "FAIL", "REQUEUE", "DELETE")
        }
        self._active = ActiveVersions(redis, query_timeout_s, breaker_s)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 1.0) -> RedisRegistry:
        redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        return cls(redis, timeout_s=timeout_s)

    @asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.timeout_s):
                yield
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("registry.unavailable", extra={"op": what, "error": repr(exc)})
            raise RegistryUnavailable(
                f"the job registry (Redis) did not answer: {type(exc).__name__}", retry_after=2
            ) from exc

    async def _script(self, name: str, args: Sequence[Any]) -> Any:
        async with self._guard(name.lower()):
            return await self._scripts[name](keys=[], args=list(args))

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> int:
        """Check Redis answers (a warning, not a failure, when it does not: queries still work)."""
        try:
            async with self._guard("open"):
                await _r(self.redis.ping())
                self.queued = int(await _r(self.redis.hget("cl:counts", "queued")) or 0)
        except RegistryUnavailable:
            return 0
        return self.queued

    async def close(self) -> None:
        await self.redis.aclose()

    # -- accepting -------------------------------------------------------------------------
    async def accept(self, docs: Sequence[NewDocument]) -> list[Accepted]:
        packed = [
            [
                d.scope.tenant,
                d.scope.collection,
                d.document_id or derived_document_id(d.scope, d.text),
                content_version(d),
                d.text,
                json.dumps(d.title),
                json.dumps(d.source),
                json.dumps(d.metadata, ensure_ascii=False),
                str(d.max_tokens),
                str(d.overlap_tokens),
                str(len(d.text)),
            ]
            for d in docs
        ]
        raw = await self._script("ACCEPT", [repr(time.time()), json.dumps(packed)])
        rows, queued = json.loads(raw)
        self.queued = int(queued)
        return [Accepted(d, j, s, v, bool(dup)) for d, j, s, v, dup in rows]

    # -- the worker's side -----------------------------------------------------------------
    async def start(
        self, job_id: str, *, owner: str = "", lock_ttl_s: float = 0.0
    ) -> tuple[str, int, JobRow | None]:
        """Mark a job running and count the try: (status, tries, row when running). With an
        `owner` (a worker id), first take the document's lock (status `locked` if another live
        worker holds it) and add the job to the owner's running set, in the same script."""
        args = [job_id, repr(time.time()), owner, int(lock_ttl_s * 1000)]
        out = await self._script("START", args)
        status, tries = str(out[0]), int(out[1])
        if status != "running":
            return status, tries, None
        flat = out[2]
        return status, tries, job_from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))

    async def requeue(self, job: JobRow, reason: str) -> bool:
        """Put a running attempt back to `queued` (it will be retried), noting why."""
        return bool(await self._script("REQUEUE", [job.job_id, job.tries, reason[:2000]]))

    async def progress(self, stage: str, done: dict[str, int], totals: dict[str, int]) -> None:
        items = {j: [n, -1] for j, n in done.items()}
        for j, total in totals.items():
            items.setdefault(j, [-1, -1])[1] = total
        if items:
            await self._script("PROGRESS", [stage, json.dumps(items)])

    async def finish(self, jobs: Sequence[tuple[JobRow, int, int]]) -> list[Finalized]:
        packed = [[job.job_id, job.tries, chunks, tokens] for job, chunks, tokens in jobs]
        raw = await self._script("FINISH", [repr(time.time()), json.dumps(packed)])
        rows = json.loads(raw) or []  # cjson encodes an empty array as {}
        return [Finalized(bool(a), keep or None, bool(c)) for a, keep, c in rows]

    async def fail(self, job: JobRow, error: str) -> Finalized:
        args = [repr(time.time()), job.job_id, job.tries, error[:2000]]
        refused, keep = await self._script("FAIL", args)
        return Finalized(False, keep or None, not refused)

    # -- reading ---------------------------------------------------------------------------
    async def job(self, job_id: str, tenant: str) -> JobRow | None:
        row = await self.peek(job_id)
        return row if row is not None and row.tenant == tenant else None

    async def peek(self, job_id: str) -> JobRow | None:
        """A job's row without its text, whichever tenant it belongs to."""
        async with self._guard("job"):
            values = await _r(self.redis.hmget(job_key(job_id), _JOB_FIELDS))
        h = {k: v for k, v in zip(_JOB_FIELDS, values, strict=True) if v is not None}
        return job_from_hash(h) if "job_id" in h else None

    async def document(self, scope: Scope, document_id: str) -> dict[str, Any] | None:
        rows = await self._documents(scope, [document_id])
        return rows[0] if rows else None

    async def documents(self, scope: Scope, after: str | None, limit: int) -> list[dict[str, Any]]:
        async with self._guard("documents"):
            ids = await _r(
                self.redis.zrangebylex(
                    f"cl:docs:{scope_key(scope)}",
                    "-" if after is None else f"({after}",
                    "+",
                    start=0,
                    num=limit,
                )
            )
        return await self._documents(scope, ids)

    async def _documents(self, scope: Scope, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        sk = scope_key(scope)
        async with self._guard("documents"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for document_id in ids:
                    pipe.hgetall(f"cl:doc:{sk}\x1f{document_id}")
                docs = await pipe.execute()
            live = [(d, h) for d, h in zip(ids, docs, strict=True) if h and h.get("deleted") == "0"]
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, h in live:
                    pipe.hget(job_key(h["latest_job"]), "status")
                statuses = await pipe.execute()
        return [
            {
                "document_id": d,
                "collection": scope.collection,
                "title": json.loads(h["title"]),
                "source": json.loads(h["source"]),
                "metadata": json.loads(h["metadata"]),
                "version": h["latest_version"],
                "chars": int(h["chars"]),
                "chunks": int(h.get("chunks") or 0),
                "job_id": h["latest_job"],
                "state": doc_state(status or "queued"),
                "created_at": float(h["created_at"]),
                "updated_at": float(h["updated_at"]),
            }
            for (d, h), status in zip(live, statuses, strict=True)
        ]

    async def counts(self) -> dict[str, int]:
        async with self._guard("counts"):
            raw = await _r(self.redis.hgetall("cl:counts"))
        counts = {k: int(v) for k, v in raw.items() if int(v) > 0}
        self.queued = counts.get("queued", 0)
        return counts

    async def delete(self, scope: Scope, document_id: str) -> bool:
        args = [scope_key(scope), document_id, repr(time.time())]
        deleted = bool(await self._script("DELETE", args))
        self._active.forget(scope, document_id)
        return deleted

    # -- the query path --------------------------------------------------------------------
    async def active_versions(self, scope: Scope, document_ids: Sequence[str]) -> dict[str, str]:
        return await self._active.lookup(scope, document_ids)
