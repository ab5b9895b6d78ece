"""RateLimiter on a fake clock: buckets, arrival order, corrections, Retry-After, bounded waits."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from service.llm.base import LLMUnavailable
from service.llm.ratelimit import RateLimiter

T = TypeVar("T")


class FakeClock:
    """Virtual time: `run` advances the clock only when every task waits on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(coro)
        while True:
            for _ in range(50):  # pure asyncio code: this many turns lets every task block
                await asyncio.sleep(0)
            if task.done():
                return task.result()
            assert self._sleepers, "deadlock: nothing waits on the clock"
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            future.set_result(None)


def limiter(clock: FakeClock, **limits: int | None) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **limits)


async def test_unlimited_never_waits() -> None:
    clock = FakeClock()
    lim = limiter(clock)
    for _ in range(1000):
        await lim.acquire(10**6)
    assert clock.slept == []


async def test_requests_per_minute_bucket() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60)  # one per second after a burst of 60
    for _ in range(60):
        await lim.acquire(1)
    assert clock.slept == []
    assert lim.wait_time(1) == pytest.approx(1.0)
    await clock.run(lim.acquire(1))
    assert clock.slept == [pytest.approx(1.0)] and clock.now == pytest.approx(1.0)


async def test_tokens_per_minute_with_correction() -> None:
    clock = FakeClock()
    lim = limiter(clock, tpm=6000)  # 100 tokens per second
    big = await lim.acquire(6000)
    assert lim.wait_time(1000) == pytest.approx(10.0)
    lim.settle(big, 1000)  # it used far less than reserved: 5000 come back
    assert lim.wait_time(1000) == 0
    lim.settle(big, 0)  # settling twice changes nothing
    assert lim.wait_time(5001) == pytest.approx(0.01)


async def test_oversized_request_is_clamped_to_a_full_bucket() -> None:
    clock = FakeClock()
    lim = limiter(clock, tpm=600)
    await lim.acquire(10_000)
    await clock.run(lim.acquire(10_000))
    assert clock.slept == [pytest.approx(60.0)]


async def test_debt_serves_waiters_in_arrival_order() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60)
    for _ in range(60):
        await lim.acquire(1)
    done: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await lim.acquire(1)
        done.append((i, clock.now))

    async def three() -> None:
        await asyncio.gather(*(one(i) for i in range(3)))

    await clock.run(three())
    assert [i for i, _ in done] == [0, 1, 2]
    assert [t for _, t in done] == pytest.approx([1.0, 2.0, 3.0])


async def test_bounded_wait_refuses_with_retry_after_and_keeps_quota() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=1)
    await lim.acquire(1)
    with pytest.raises(LLMUnavailable) as caught:
        await lim.acquire(1, max_wait=5.0)
    assert caught.value.retry_after == pytest.approx(60.0)
    assert clock.slept == []
    assert lim.wait_time(1) == pytest.approx(60.0)  # the refused call reserved nothing


async def test_retry_after_pauses_every_caller() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=1000)
    lim.pause(5.0)
    assert lim.paused_for == pytest.approx(5.0)
    with pytest.raises(LLMUnavailable) as caught:
        await lim.acquire(1, max_wait=2.0)
    assert caught.value.retry_after == pytest.approx(5.0)

    async def two() -> list[float]:
        async def one() -> float:
            await lim.acquire(1)
            return clock.now

        return list(await asyncio.gather(one(), one()))

    assert await clock.run(two()) == [pytest.approx(5.0), pytest.approx(5.0)]
    lim.pause(1.0)
    lim.pause(0.5)  # a shorter pause never shortens the one in force
    assert lim.paused_for == pytest.approx(1.0)


async def test_pause_arriving_while_waiting_holds_the_waiter() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60)
    for _ in range(60):
        await lim.acquire(1)

    async def scenario() -> None:
        waiter = asyncio.create_task(lim.acquire(1))
        await asyncio.sleep(0)
        assert clock.slept == [pytest.approx(1.0)]
        lim.pause(30.0)  # a 429 with Retry-After: 30 arrives meanwhile
        await waiter

    await clock.run(scenario())
    assert clock.slept == [pytest.approx(1.0), pytest.approx(29.0)]
    assert clock.now == pytest.approx(30.0)


async def test_pause_longer_than_the_wait_allowed_refuses_a_waiter() -> None:
    clock = FakeClock()
    lim = limiter(clock, rpm=60)
    for _ in range(60):
        await lim.acquire(1)

    async def scenario() -> None:
        waiter = asyncio.create_task(lim.acquire(1, max_wait=10.0))
        await asyncio.sleep(0)
        lim.pause(30.0)
        with pytest.raises(LLMUnavailable) as caught:
            await waiter
        assert caught.value.retry_after == pytest.approx(29.0)

    await clock.run(scenario())
    assert lim.wait_time(1) == pytest.approx(29.0)  # the pause, not the refused reservation


async def test_cancelled_waiter_gives_its_quota_back() -> None:
    clock = FakeClock()
    lim = limiter(clock, tpm=600)
    await lim.acquire(600)
    waiter = asyncio.create_task(lim.acquire(600))
    await asyncio.sleep(0)
    assert lim.wait_time(600) == pytest.approx(120.0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.wait_time(600) == pytest.approx(60.0)


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="rpm and tpm"):
        RateLimiter(rpm=0)
