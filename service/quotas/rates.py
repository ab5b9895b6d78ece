"""Rate limits per API key (requests) and per tenant (LLM + embedding tokens), with `limits`.

Counters live in memory in embedded mode and in Redis when scaled out (CITELINE_QUEUE=arq),
where every API process counts against the same budget. Requests use a sliding-window counter
(two counters per key: no burst at a window edge); tokens a fixed window, charged after each
answer with what it really spent, so a run that starts inside the budget finishes. When the
counters' Redis does not answer, requests are let through and a warning is logged: a limit
protects the budget, and queries keep answering while Redis is down.
"""

from __future__ import annotations

import logging
import time

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
from redis.asyncio import ConnectionPool

from service.auth.principal import Principal
from service.config import Settings
from service.errors import TooManyRequests
from service.redis_keys import REDIS_ERRORS

log = logging.getLogger("citeline.limits")

_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, limits.errors.StorageError)


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        storage: Storage
        self._pool: ConnectionPool | None = None
        if settings.queue == "arq" and settings.redis_url:
            self._pool = ConnectionPool.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix="cl:limits",
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self.requests = _item(settings.key_rate_limit)
        self.tokens = _item(settings.tenant_token_limit)
        self._per_key = SlidingWindowCounterRateLimiter(storage)
        self._per_tenant = FixedWindowRateLimiter(storage)

    async def admit(self, principal: Principal) -> None:
        """Count one request of an issued key; 429 once its rate is spent."""
        item = self.requests
        if item is None or not principal.limited:
            return
        try:
            if await self._per_key.hit(item, principal.key_id):
                return
            stats = await self._per_key.get_window_stats(item, principal.key_id)
        except _ERRORS as exc:
            log.warning("limits.unavailable", extra={"error": repr(exc)})
            return
        raise TooManyRequests(
            f"this API key made more than {item} requests (CITELINE_KEY_RATE_LIMIT)",
            retry_after=stats.reset_time - time.time(),
            policy="requests",
            limit=item.amount,
            remaining=stats.remaining,
        )

    async def check_tokens(self, tenant: str) -> None:
        """429 when the tenant has spent its token budget for the window."""
        item = self.tokens
        if item is None:
            return
        try:
            if await self._per_tenant.test(item, tenant):
                return
            stats = await self._per_tenant.get_window_stats(item, tenant)
        except _ERRORS as exc:
            log.warning("limits.unavailable", extra={"error": repr(exc)})
            return
        raise TooManyRequests(
            f"tenant {tenant!r} spent its {item} LLM and embedding tokens "
            "(CITELINE_TENANT_TOKEN_LIMIT)",
            retry_after=stats.reset_time - time.time(),
            policy="tokens",
            limit=item.amount,
        )

    async def charge_tokens(self, tenant: str, tokens: int) -> None:
        if self.tokens is None or tokens <= 0:
            return
        try:
            await self._per_tenant.hit(self.tokens, tenant, cost=tokens)
        except _ERRORS as exc:
            log.warning("limits.unavailable", extra={"error": repr(exc)})

    async def tokens_left(self, tenant: str) -> int | None:
        if self.tokens is None:
            return None
        try:
            return (await self._per_tenant.get_window_stats(self.tokens, tenant)).remaining
        except _ERRORS:
            return None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()


def _item(spec: str | None) -> limits.RateLimitItem | None:
    return limits.parse(spec) if spec else None
