"""What each tenant spent per UTC day: requests, tokens (LLM + embedding) and estimated cost.

Counting is a dict update on the request path; the counts are written to the catalog's backend
(the SQLite file of the data dir, or Redis, where every API process adds to the same hash)
every `FLUSH_S` seconds and at shutdown. A report adds what is still pending in this process.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service.cancelling import stop_task
from service.redis_keys import REDIS_ERRORS, usage_key

log = logging.getLogger("citeline.usage")

FLUSH_S = 2.0
_KEEP_S = 40 * 86400  # Redis keeps 40 days of daily counts
_FLUSH_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, sqlite3.Error)


@dataclass(slots=True)
class Spent:
    requests: int = 0
    tokens: int = 0
    cost_micro_usd: int = 0  # integers add up exactly, in SQL, Redis and memory alike

    def add(self, other: Spent) -> None:
        self.requests += other.requests
        self.tokens += other.tokens
        self.cost_micro_usd += other.cost_micro_usd


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


class UsageBackend(Protocol):
    async def add(self, spent: dict[tuple[str, str], Spent]) -> None: ...

    async def get(self, tenant: str, day: str) -> Spent: ...

    async def close(self) -> None: ...


class UsageLedger:
    def __init__(self, backend: UsageBackend) -> None:
        self.backend = backend
        self._pending: defaultdict[tuple[str, str], Spent] = defaultdict(Spent)
        self._task: asyncio.Task[None] | None = None

    def count_request(self, tenant: str) -> None:
        self._pending[(tenant, today())].requests += 1

    def count_tokens(self, tenant: str, tokens: int, cost_usd: float | None) -> None:
        spent = self._pending[(tenant, today())]
        spent.tokens += tokens
        spent.cost_micro_usd += round((cost_usd or 0.0) * 1_000_000)

    async def report(self, tenant: str) -> tuple[str, Spent]:
        day = today()
        spent = await self.backend.get(tenant, day)
        pending = self._pending.get((tenant, day))
        if pending is not None:
            spent.add(pending)
        return day, spent

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_every(), name="usage.flush")

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = dict(self._pending), defaultdict(Spent)
        try:
            await self.backend.add(batch)
        except _FLUSH_ERRORS as exc:  # keep the counts for the next flush
            log.warning("usage.flush_failed", extra={"error": repr(exc)})
            for key, spent in batch.items():
                self._pending[key].add(spent)

    async def close(self) -> None:
        await stop_task(self._task)
        await self.flush()
        await self.backend.close()


class SqliteUsage:
    """Daily counts in the data dir's access database (embedded mode)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = asyncio.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS usage (tenant TEXT NOT NULL, day TEXT NOT NULL,"
            " requests INTEGER NOT NULL, tokens INTEGER NOT NULL, cost_micro_usd INTEGER NOT NULL,"
            " PRIMARY KEY (tenant, day))"
        )

    async def add(self, spent: dict[tuple[str, str], Spent]) -> None:
        rows = [(t, d, s.requests, s.tokens, s.cost_micro_usd) for (t, d), s in spent.items()]
        async with self._lock:
            await asyncio.to_thread(self._add, rows)

    def _add(self, rows: list[tuple[str, str, int, int, int]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO usage VALUES (?,?,?,?,?) ON CONFLICT(tenant, day) DO UPDATE SET"
                " requests=requests+excluded.requests, tokens=tokens+excluded.tokens,"
                " cost_micro_usd=cost_micro_usd+excluded.cost_micro_usd",
                rows,
            )

    async def get(self, tenant: str, day: str) -> Spent:
        async with self._lock:
            row = await asyncio.to_thread(
                lambda: self._db.execute(
                    "SELECT requests, tokens, cost_micro_usd FROM usage WHERE tenant=? AND day=?",
                    (tenant, day),
                ).fetchone()
            )
        return Spent(*row) if row else Spent()

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._db.close)


class RedisUsage:
    """Daily counts in Redis hashes, added to by every API process (scaled-out mode)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def add(self, spent: dict[tuple[str, str], Spent]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for (tenant, day), s in spent.items():
                key = usage_key(tenant, day)
                pipe.hincrby(key, "requests", s.requests)
                pipe.hincrby(key, "tokens", s.tokens)
                pipe.hincrby(key, "cost_micro_usd", s.cost_micro_usd)
                pipe.expire(key, _KEEP_S)
            await pipe.execute()

    async def get(self, tenant: str, day: str) -> Spent:
        got = await self.redis.hgetall(usage_key(tenant, day))
        return Spent(
            int(got.get("requests", 0)), int(got.get("tokens", 0)),
            int(got.get("cost_micro_usd", 0)),
        )  # fmt: skip

    async def close(self) -> None:
        await self.redis.aclose()
