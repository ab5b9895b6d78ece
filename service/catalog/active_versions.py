"""Active versions for the query path in the scaled-out mode: fresh from Redis, or, when Redis
does not answer, the last ones this process saw.

Every search asks Redis (one HMGET, bounded by `timeout_s`), so a delete or a new version is
seen by the very next query of any API process. When Redis does not answer, searches are
served from the versions this process last saw, and Redis is not asked again for `breaker_s`
(so a stalled Redis costs one query `timeout_s`, not every query). A document this process has
never seen is left out until Redis answers again. While Redis is down no version can change
anyway: deletes and indexing both need it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from service.redis_keys import REDIS_ERRORS, active_key
from service.store.base import Scope

log = logging.getLogger("citeline.registry")

CACHE_MAX = 200_000  # versions remembered for degraded queries (~50 MB at most)


class ActiveVersions:
    def __init__(self, redis: Redis, timeout_s: float, breaker_s: float) -> None:
        self.redis, self.timeout_s, self.breaker_s = redis, timeout_s, breaker_s
        self._seen: OrderedDict[tuple[Scope, str], str] = OrderedDict()
        self._skip_until = 0.0

    async def lookup(self, scope: Scope, document_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(document_ids))
        if not ids:
            return {}
        now = time.monotonic()
        if now >= self._skip_until:
            try:
                async with asyncio.timeout(self.timeout_s):
                    values = await _r(self.redis.hmget(active_key(scope), ids))
            except REDIS_ERRORS as exc:
                self._skip_until = now + self.breaker_s
                log.warning("registry.degraded", extra={"error": repr(exc)})
            else:
                return self._remember(scope, ids, values)
        seen = ((d, self._seen.get((scope, d))) for d in ids)
        return {d: v for d, v in seen if v is not None}

    def forget(self, scope: Scope, document_id: str) -> None:
        self._seen.pop((scope, document_id), None)

    def _remember(self, scope: Scope, ids: list[str], values: list[str | None]) -> dict[str, str]:
        found: dict[str, str] = {}
        for document_id, version in zip(ids, values, strict=True):
            key = (scope, document_id)
            if version is None:
                self._seen.pop(key, None)
                continue
            found[document_id] = version
            self._seen[key] = version
            self._seen.move_to_end(key)
        while len(self._seen) > CACHE_MAX:
            self._seen.popitem(last=False)
        return found


async def _r(awaitable: Any) -> Any:
    return await awaitable
