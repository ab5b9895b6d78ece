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
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis

from service import redis_keys as keys
from service.catalog import redis_scripts as lua
from service.catalog.active_versions import ActiveVersions
from service.catalog.base import (
    BATCH_STATUSES,
    Accepted,
    BatchRow,
    Claim,
    ClaimStatus,
    Finalized,
    NewDocument,
    ParsedInfo,
    RegistryUnavailable,
    Stored,
    Waiting,
    content_version,
    document_id_of,
)
from service.catalog.rows import JobRow, doc_state
from service.redis_keys import REDIS_ERRORS
from service.store.base import Scope

log = logging.getLogger("citeline.registry")

_JOB_FIELDS = [f for f in JobRow.__dataclass_fields__ if f != "text"]
_SCRIPTS = (
    "ACCEPT",
    "START",
    "PROGRESS",
    "FINISH",
    "FAIL",
    "REQUEUE",
    "DELETE",
    "PARSED",
    "CANCEL",
)


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
        media_type=json.loads(h.get("media_type") or "null"),
        filename=json.loads(h.get("filename") or "null"),
        pages=_opt_int(h.get("pages")),
        pages_without_text=tuple(json.loads(h.get("pages_without_text") or "[]")),
    )


async def _r(awaitable: Any) -> Any:
    """Await a redis-py command (its stubs type results as `Awaitable[T] | T`)."""
    return await awaitable


class RedisRegistry:
    keeps_texts = False  # a job's text leaves Redis when the job ends; the file store keeps it

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
        self._scripts = {name: redis.register_script(getattr(lua, name)) for name in _SCRIPTS}
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
        except REDIS_ERRORS as exc:
            log.warning("registry.unavailable", extra={"op": what, "error": repr(exc)})
            raise RegistryUnavailable(
                f"the job registry (Redis) did not answer: {type(exc).__name__}", retry_after=2
            ) from exc

    async def _script(self, name: str, args: Sequence[Any]) -> Any:
        async with self._guard(name.lower()):
            return await self._scripts[name](keys=[], args=list(args))

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Check Redis answers (a warning, not a failure, when it does not: queries still work).

        Jobs a crashed worker left running are started again by arq (see `service.jobs`)."""
        try:
            async with self._guard("open"):
                await _r(self.redis.ping())
                self.queued = int(await _r(self.redis.hget(keys.COUNTS, "queued")) or 0)
        except RegistryUnavailable:
            pass

    async def close(self) -> None:
        await self.redis.aclose()

    # -- accepting -------------------------------------------------------------------------
    async def accept(
        self, docs: Sequence[NewDocument], *, batch_id: str | None = None
    ) -> list[Accepted]:
        packed = [
            [
                d.scope.tenant,
                d.scope.collection,
                document_id_of(d),
                content_version(d),
                d.text,
                json.dumps(d.title),
                json.dumps(d.source),
                json.dumps(d.metadata, ensure_ascii=False),
                str(d.max_tokens),
                str(d.overlap_tokens),
                str(len(d.text)),
                str(len(d.text.encode())),
                json.dumps(d.media_type),
                json.dumps(d.filename),
                json.dumps(d.file_sha256),
            ]
            for d in docs
        ]
        tenant = docs[0].scope.tenant if docs else ""
        args = [repr(time.time()), json.dumps(packed), batch_id or "", tenant]
        raw = await self._script("ACCEPT", args)
        rows, queued = json.loads(raw)
        self.queued = int(queued)
        return [Accepted(d, j, s, v, bool(dup)) for d, j, s, v, dup in rows]

    # -- the worker's side -----------------------------------------------------------------
    async def waiting(self, limit: int) -> list[Waiting]:
        """Queued jobs, oldest first, from the open-jobs set (arq holds the actual queue)."""
        async with self._guard("waiting"):
            ids = list(await _r(self.redis.smembers(keys.OPEN_JOBS)))
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hmget(keys.job_key(job_id), list(self._WAITING_FIELDS))
                rows = await pipe.execute()
        found = [
            (int(seq or 0), Waiting(job_id, (tenant, collection, document_id)))
            for job_id, (status, seq, tenant, collection, document_id) in zip(
                ids, rows, strict=True
            )
            if status == "queued"
        ]
        return [w for _, w in sorted(found, key=lambda f: f[0])[:limit]]

    # `seq` orders jobs accepted within one script call (they share `created_at`).
    _WAITING_FIELDS = ("status", "seq", "tenant", "collection", "document_id")

    async def claim(
        self, job_ids: Sequence[str], *, owner: str = "", lock_ttl_s: float = 0.0
    ) -> list[Claim]:
        """Start each job, one script each: with an `owner` (a worker id), the document's lock,
        the owner's running set and the try count change together."""
        return [await self._claim(job_id, owner, lock_ttl_s) for job_id in job_ids]

    async def _claim(self, job_id: str, owner: str, lock_ttl_s: float) -> Claim:
        args = [job_id, repr(time.time()), owner, int(lock_ttl_s * 1000)]
        out = await self._script("START", args)
        status, tries = str(out[0]), int(out[1])
        if status != "running":
            return Claim(job_id, cast(ClaimStatus, status), tries)
        flat = out[2]
        row = job_from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))
        return Claim(job_id, "claimed", tries, row)

    async def requeue(self, jobs: Sequence[JobRow], reason: str) -> int:
        """Put running attempts back to `queued` (they will be retried), noting why."""
        n = 0
        for job in jobs:
            args = [job.job_id, job.tries, reason[:2000], repr(time.time())]
            n += int(await self._script("REQUEUE", args))
        return n

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
        return [
            Finalized(bool(a), keep or None, bool(c), last or None) for a, keep, c, last in rows
        ]

    async def fail(self, job: JobRow, error: str) -> Finalized:
        args = [repr(time.time()), job.job_id, job.tries, error[:2000]]
        refused, keep, latest = await self._script("FAIL", args)
        return Finalized(False, keep or None, not refused, latest or None)

    # -- parsing and batches ---------------------------------------------------------------
    async def parsed(self, job: JobRow, info: ParsedInfo) -> None:
        pages = "" if info.pages is None else str(info.pages)
        args = [job.job_id, job.tries, json.dumps(info.title), info.chars, pages]
        without = json.dumps(list(info.pages_without_text))
        await self._script("PARSED", [*args, without, info.bytes])

    async def batch(self, batch_id: str, tenant: str) -> BatchRow | None:
        async with self._guard("batch"):
            h = await _r(self.redis.hgetall(keys.batch_key(batch_id)))
            collections = await _r(self.redis.smembers(keys.batch_collections_key(batch_id)))
            if not h or h.get("tenant") != tenant:
                return None
            chunks = await self._batch_chunks(batch_id)
        counts = {s: int(h.get(s) or 0) for s in BATCH_STATUSES}
        completed = h.get("completed_at")
        return BatchRow(
            batch_id, tenant, int(h.get("total") or 0), counts, h.get("cancelled") == "1",
            float(h["created_at"]), float(completed) if completed else None,
            frozenset(collections), chunks,
        )  # fmt: skip

    async def _batch_chunks(self, batch_id: str) -> int:
        """The chunks its jobs stored so far: one pipelined read of each job's count."""
        job_ids = list(await _r(self.redis.smembers(keys.batch_jobs_key(batch_id))))
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(keys.job_key(job_id), "chunks_done")
            done = await pipe.execute()
        return sum(int(n or 0) for n in done)

    async def cancel_batch(self, batch_id: str, tenant: str, reason: str) -> BatchRow | None:
        if await self.batch(batch_id, tenant) is None:
            return None
        cancelled = int(await self._script("CANCEL", [batch_id, repr(time.time()), reason[:2000]]))
        self.queued = max(0, self.queued - cancelled)
        return await self.batch(batch_id, tenant)

    # -- reading ---------------------------------------------------------------------------
    async def job(self, job_id: str, tenant: str) -> JobRow | None:
        """A job's row, without its text."""
        async with self._guard("job"):
            values = await _r(self.redis.hmget(keys.job_key(job_id), _JOB_FIELDS))
        h = {k: v for k, v in zip(_JOB_FIELDS, values, strict=True) if v is not None}
        row = job_from_hash(h) if "job_id" in h else None
        return row if row is not None and row.tenant == tenant else None

    async def document(self, scope: Scope, document_id: str) -> dict[str, Any] | None:
        rows = await self._documents(scope, [document_id])
        return rows[0] if rows else None

    async def documents(self, scope: Scope, after: str | None, limit: int) -> list[dict[str, Any]]:
        async with self._guard("documents"):
            ids = await _r(
                self.redis.zrangebylex(
                    keys.docs_key(scope),
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
        async with self._guard("documents"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for document_id in ids:
                    pipe.hgetall(keys.doc_key(scope, document_id))
                docs = await pipe.execute()
            live = [(d, h) for d, h in zip(ids, docs, strict=True) if h and h.get("deleted") == "0"]
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, h in live:
                    pipe.hget(keys.job_key(h["latest_job"]), "status")
                statuses = await pipe.execute()
        return [
            {
                "document_id": d,
                "collection": scope.collection,
                "title": json.loads(h["title"]),
                "source": json.loads(h["source"]),
                "metadata": json.loads(h["metadata"]),
                "version": h["latest_version"],
                "active_version": h.get("active_version"),
                "media_type": json.loads(h.get("media_type") or "null"),
                "filename": json.loads(h.get("filename") or "null"),
                "sha256": json.loads(h.get("sha256") or "null"),
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
            raw = await _r(self.redis.hgetall(keys.COUNTS))
        counts = {k: int(v) for k, v in raw.items() if int(v) > 0}
        self.queued = counts.get("queued", 0)
        return counts

    async def backup(self, path: Path) -> bool:
        return False  # Redis has its own: RDB snapshots or the append-only file (README)

    async def collections(self, tenant: str, limit: int) -> list[str]:
        async with self._guard("collections"):
            names = sorted(await _r(self.redis.smembers(keys.collections_key(tenant))))
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zcard(keys.docs_key(Scope(tenant, name)))
                sizes = await pipe.execute()
        return [n for n, size in zip(names, sizes, strict=True) if size][:limit]

    async def delete_documents(self, scope: Scope, document_ids: Sequence[str]) -> list[str]:
        """Tombstone the documents in one script (atomic); the ids of those that were live."""
        if not document_ids:
            return []
        args = [keys.scope_key(scope), scope.tenant, repr(time.time()), *document_ids]
        deleted = list(await self._script("DELETE", args))
        for document_id in document_ids:
            self._active.forget(scope, document_id)
        return deleted

    async def delete_collection(self, scope: Scope, step: int = 500) -> int:
        """Tombstone the scope's documents, `step` per script (each one atomic)."""
        n = 0
        while True:
            async with self._guard("delete_collection"):
                ids = await _r(self.redis.zrange(keys.docs_key(scope), 0, step - 1))
            if not ids:
                return n
            n += len(await self.delete_documents(scope, ids))

    async def posted_text(self, scope: Scope, document_id: str, version: str) -> str | None:
        return None

    async def tenant_storage(self, tenant: str) -> Stored:
        async with self._guard("tenant_storage"):
            got = await _r(self.redis.hgetall(keys.tenant_key(tenant)))
        return Stored(
            int(got.get("documents", 0)), int(got.get("chunks", 0)), int(got.get("bytes", 0))
        )

    async def compact(self) -> None:
        """Nothing to do: a job's text is deleted when the job ends (HDEL), and Redis keeps
        no history of deleted values."""
        return None

    # -- the query path --------------------------------------------------------------------
    async def active_versions(self, scope: Scope, document_ids: Sequence[str]) -> dict[str, str]:
        return await self._active.lookup(scope, document_ids)
