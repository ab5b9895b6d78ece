"""API keys in Redis (scaled-out mode): every API process reads the same records.

Each request reads its key's record from Redis (one HGETALL), so a revocation in any process
is refused by every other one on its next request. When Redis does not answer, a key this
process checked in the last `STALE_S` seconds is still accepted from memory (no key can be
revoked meanwhile: revoking needs Redis too) and Redis is not asked again for `breaker_s`;
any other key gets 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any

from redis.asyncio import Redis

from service.auth.keys import KeyRecord
from service.catalog.base import RegistryUnavailable
from service.redis_keys import REDIS_ERRORS, api_key_key, api_keys_key

log = logging.getLogger("citeline.keys")

STALE_S = 300.0
_CACHE_MAX = 10_000


class RedisKeyStore:
    def __init__(self, url: str, *, timeout_s: float, breaker_s: float = 2.0) -> None:
        self.redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.timeout_s, self.breaker_s = timeout_s, breaker_s
        self._seen: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._skip_until = 0.0

    async def open(self) -> None:
        return None  # connections open on first use; a down Redis is a 503 per request

    async def close(self) -> None:
        await self.redis.aclose()

    async def _call(self, what: str, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await awaitable
        except REDIS_ERRORS as exc:
            log.warning("keys.unavailable", extra={"op": what, "error": repr(exc)})
            raise RegistryUnavailable(
                f"the key store (Redis) did not answer: {type(exc).__name__}", retry_after=2
            ) from exc

    async def add(self, record: KeyRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(api_key_key(record.id), mapping=_fields(record))
            pipe.zadd(api_keys_key(record.tenant), {record.id: record.created_at})
            pipe.zadd(api_keys_key(None), {record.id: record.created_at})
            await self._call("add", pipe.execute())

    async def get(self, key_id: str) -> KeyRecord | None:
        now = time.monotonic()
        if now >= self._skip_until:
            try:
                fields = await self._call("get", self.redis.hgetall(api_key_key(key_id)))
            except RegistryUnavailable:
                self._skip_until = now + self.breaker_s
            else:
                record = _record(key_id, fields) if fields else None
                self._remember(key_id, now, record)
                return record
        seen = self._seen.get(key_id)
        if seen is None or now - seen[0] > STALE_S:
            raise RegistryUnavailable("the key store (Redis) did not answer", retry_after=2)
        return seen[1]

    def _remember(self, key_id: str, now: float, record: KeyRecord | None) -> None:
        self._seen[key_id] = (now, record)
        self._seen.move_to_end(key_id)
        while len(self._seen) > _CACHE_MAX:
            self._seen.popitem(last=False)

    async def list(self, tenant: str | None, limit: int) -> list[KeyRecord]:
        ids = await self._call("list", self.redis.zrange(api_keys_key(tenant), 0, limit - 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(api_key_key(key_id))
            rows = await self._call("list", pipe.execute())
        return [_record(k, f) for k, f in zip(ids, rows, strict=True) if f]

    async def revoke(self, key_id: str, tenant: str | None) -> bool:
        owner = await self._call("revoke", self.redis.hget(api_key_key(key_id), "tenant"))
        if owner is None or (tenant is not None and owner != tenant):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(api_key_key(key_id))
            pipe.zrem(api_keys_key(owner), key_id)
            pipe.zrem(api_keys_key(None), key_id)
            await self._call("revoke", pipe.execute())
        self._seen.pop(key_id, None)
        return True


def _fields(r: KeyRecord) -> dict[str, str]:
    return {
        "name": r.name,
        "tenant": r.tenant,
        "scopes": json.dumps(list(r.scopes)),
        "collections": json.dumps(None if r.collections is None else list(r.collections)),
        "created_at": repr(r.created_at),
        "expires_at": json.dumps(r.expires_at),
        "secret_hash": r.secret_hash,
    }


def _record(key_id: str, f: dict[str, str]) -> KeyRecord:
    collections = json.loads(f["collections"])
    return KeyRecord(
        id=key_id,
        name=f["name"],
        tenant=f["tenant"],
        scopes=tuple(json.loads(f["scopes"])),
        collections=None if collections is None else tuple(collections),
        created_at=float(f["created_at"]),
        expires_at=json.loads(f["expires_at"]),
        secret_hash=f["secret_hash"],
    )
