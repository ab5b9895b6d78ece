"""A client-side rate limiter shared by every LLM request of the process.

Two token buckets, requests per minute and tokens per minute, each refilling continuously and
holding at most one minute's worth. A caller reserves one request and its estimated tokens up
front (prompt + max answer), which may drive a bucket negative: later callers then wait for the
debt to refill, so callers are served in arrival order. The estimate is corrected with the
actual usage once known. A Retry-After from the server pauses every caller until it has passed.
Waiting is bounded: when the wait would exceed what the caller can afford, it gets
LLMUnavailable with `retry_after`, so the API can answer 503 + Retry-After at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.llm.base import LLMUnavailable

__all__ = ["RateLimiter", "Reservation"]

log = logging.getLogger("citeline.llm")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class _Bucket:
    """Continuous-refill bucket; `level` may go negative (a debt later callers wait out)."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(now - self.updated, 0.0)
        self.level = min(self.capacity, self.level + elapsed * self.rate)
        self.updated = now

    def wait_for(self, amount: float, now: float) -> float:
        self._refill(now)
        return max(amount - self.level, 0.0) / self.rate

    def adjust(self, delta: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.capacity, self.level + delta)


@dataclass
class Reservation:
    """One admitted request: the tokens reserved for it, until settled."""

    tokens: int
    settled: bool = False


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits; None leaves that dimension unlimited.

    `clock` and `sleep` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if (rpm is not None and rpm < 1) or (tpm is not None and tpm < 1):
            raise ValueError("rpm and tpm must be positive (or None for no limit)")
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._requests = _Bucket(rpm, now) if rpm else None
        self._tokens = _Bucket(tpm, now) if tpm else None
        self._paused_until = now

    @property
    def paused_for(self) -> float:
        """Seconds until a Retry-After pause ends (0 when none is in force)."""
        return max(self._paused_until - self._clock(), 0.0)

    def pause(self, seconds: float) -> None:
        """Hold every caller, those already waiting included, for `seconds` from now."""
        until = self._clock() + max(seconds, 0.0)
        if until > self._paused_until:
            self._paused_until = until
            log.warning("llm.rate_limit.pause", extra={"seconds": seconds})

    def _clamped(self, tokens: int) -> int:
        # A request larger than a whole minute's quota could never be granted otherwise.
        cap = int(self._tokens.capacity) if self._tokens else tokens
        return max(min(tokens, cap), 0)

    def wait_time(self, tokens: int) -> float:
        """How long a request for `tokens` would wait now (nothing is reserved)."""
        now = self._clock()
        waits = [self._paused_until - now, 0.0]
        if self._requests:
            waits.append(self._requests.wait_for(1, now))
        if self._tokens:
            waits.append(self._tokens.wait_for(self._clamped(tokens), now))
        return max(waits)

    async def acquire(self, tokens: int, *, max_wait: float | None = None) -> Reservation:
        """Reserve one request and `tokens`, waiting for them; LLMUnavailable past `max_wait`."""
        start = self._clock()
        wait = self.wait_time(tokens)
        if max_wait is not None and wait > max_wait:
            raise self._refusal(wait)
        reservation = Reservation(self._clamped(tokens))
        self._take(reservation, +1)
        try:
            if wait > 0:
                await self._sleep(wait)
            # A Retry-After that arrived while we waited holds us too.
            while (left := self._paused_until - self._clock()) > 0:
                if max_wait is not None and self._clock() - start + left > max_wait:
                    raise self._refusal(left)
                await self._sleep(left)
        except (asyncio.CancelledError, LLMUnavailable):
            self._take(reservation, -1)  # never admitted: give the quota back
            reservation.settled = True
            raise
        return reservation

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation with the tokens actually used (0 when the call failed early)."""
        if reservation.settled:
            return
        reservation.settled = True
        if self._tokens:
            self._tokens.adjust(reservation.tokens - actual_tokens, self._clock())

    def _take(self, reservation: Reservation, sign: int) -> None:
        now = self._clock()
        if self._requests:
            self._requests.adjust(-sign, now)
        if self._tokens:
            self._tokens.adjust(-sign * reservation.tokens, now)

    def _refusal(self, wait: float) -> LLMUnavailable:
        return LLMUnavailable(
            f"client-side LLM rate limit: the next slot is {wait:.1f} s away",
            retry_after=wait,
        )
