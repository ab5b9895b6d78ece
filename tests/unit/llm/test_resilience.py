"""ResilientLLM over the OpenAI stub: retries, deadlines, fallbacks, broken streams, disconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest

from service.llm.base import (
    LLMDeadlineExceeded,
    LLMRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    Usage,
)
from service.llm.ratelimit import RateLimiter
from service.llm.resilience import ResilientLLM
from tests.stubs.openai_stub import StubServer, closed_port_url
from tests.unit.conftest import (
    MESSAGES,
    REPLY,
    MakeLLM,
    chat_requests,
    collect,
    open_fds,
    other_tasks,
)

LONG_REPLY = " ".join(f"word{i}" for i in range(200)) + " [1]."

MakeResilient = Callable[..., ResilientLLM]


@pytest.fixture
def resilient(make_llm: MakeLLM) -> MakeResilient:
    def make(
        *,
        fallbacks: tuple[dict[str, Any], ...] = (),
        limiter: RateLimiter | None = None,
        deadline_s: float = 5.0,
        **primary: Any,
    ) -> ResilientLLM:
        return ResilientLLM(
            make_llm(**primary), [make_llm(**f) for f in fallbacks], limiter, deadline_s
        )

    return make


async def test_transient_429_then_500_is_retried_by_the_sdk(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.faults.rate_limit(1, retry_after=0.01)
    openai_stub.faults.server_error(1, retry_after=0.01)

    text, usage, _ = await collect(resilient())

    assert text == REPLY and usage is not None and usage.model == "stub-chat"
    assert [r.status for r in chat_requests(openai_stub)] == [429, 500, 200]


async def test_persistent_429_is_unavailable_and_pauses_the_limiter(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.faults.rate_limit(10, retry_after=0.05)
    limiter = RateLimiter(rpm=1000)

    with pytest.raises(LLMUnavailable) as caught:
        await collect(resilient(limiter=limiter))

    assert caught.value.retry_after == pytest.approx(0.05)
    assert caught.value.status_code == 429
    assert [r.status for r in chat_requests(openai_stub)] == [429, 429, 429]  # 2 SDK retries
    assert 0 < limiter.paused_for <= 0.05


async def test_stalled_upstream_hits_the_deadline(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.faults.stall(30)
    started = time.monotonic()

    with pytest.raises(LLMDeadlineExceeded):
        await collect(resilient(deadline_s=0.5, timeout=30.0))

    assert time.monotonic() - started < 1.5
    # Giving up also hung up on the server.
    await openai_stub.await_until(lambda rs: rs[0].disconnected_at is not None, timeout=1.0)


async def test_deadline_after_the_first_delta_breaks_the_stream(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.configure(chunk_interval=0.1)
    seen: list[str] = []
    with pytest.raises(LLMStreamBroken) as caught:
        async for event in resilient(deadline_s=0.45).stream(MESSAGES, max_tokens=64):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
    assert 1 <= len(seen) < len(REPLY.split())
    assert isinstance(caught.value.__cause__, LLMDeadlineExceeded)
    assert len(chat_requests(openai_stub)) == 1


async def test_mid_stream_close_breaks_the_stream_without_retry_or_fallback(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.faults.close_after(3, mode="abort")
    llm = resilient(fallbacks=({"model": "stub-fallback"},))
    seen: list[str] = []
    with pytest.raises(LLMStreamBroken):
        async for event in llm.stream(MESSAGES, max_tokens=64):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
    assert "".join(seen) == " ".join(REPLY.split(" ")[:3])
    assert len(chat_requests(openai_stub)) == 1


async def test_refused_primary_falls_back_to_the_secondary(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    llm = resilient(
        base_url=closed_port_url(),
        model="primary",
        max_retries=0,
        fallbacks=({"model": "secondary"},),
    )
    text, usage, _ = await collect(llm)
    assert text == REPLY
    assert usage is not None and usage.model == "secondary"
    assert [r.body["model"] for r in chat_requests(openai_stub)] == ["secondary"]


async def test_unknown_primary_model_falls_back(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.configure(strict_models=True)
    llm = resilient(model="retired-model", fallbacks=({"model": "stub-chat"},))
    text, usage, _ = await collect(llm)
    assert text == REPLY and usage is not None and usage.model == "stub-chat"
    assert [r.status for r in chat_requests(openai_stub)] == [404, 200]


async def test_bad_request_does_not_fall_back(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.faults.bad_request(1)
    with pytest.raises(LLMRejected):
        await collect(resilient(fallbacks=({"model": "secondary"},)))
    assert len(chat_requests(openai_stub)) == 1


async def test_every_model_unavailable_reports_the_shortest_retry_after(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.faults.rate_limit(2, retry_after=0.2)
    openai_stub.faults.server_error(5, status=503, retry_after=0.03)
    llm = resilient(
        max_retries=0,
        fallbacks=({"model": "b", "max_retries": 0}, {"model": "c", "max_retries": 0}),
    )
    with pytest.raises(LLMUnavailable) as caught:
        await collect(llm)
    assert caught.value.retry_after == pytest.approx(0.03)
    assert [r.body["model"] for r in chat_requests(openai_stub)] == ["stub-chat", "b", "c"]


async def test_saturated_limiter_answers_unavailable_without_calling(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    limiter = RateLimiter(rpm=1)
    await limiter.acquire(1)
    with pytest.raises(LLMUnavailable) as caught:
        await collect(resilient(limiter=limiter, deadline_s=2.0))
    assert caught.value.retry_after == pytest.approx(60.0, abs=1.0)
    assert chat_requests(openai_stub) == []


async def test_saturated_limiter_sends_the_request_to_the_fallback(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    limiter = RateLimiter(rpm=1)
    await limiter.acquire(1)
    text, usage, _ = await collect(resilient(limiter=limiter, fallbacks=({"model": "secondary"},)))
    assert text == REPLY and usage is not None and usage.model == "secondary"


async def test_limiter_is_corrected_with_actual_usage(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    limiter = RateLimiter(tpm=100_000, clock=lambda: 0.0)  # frozen: no refill meanwhile
    _, usage, _ = await collect(resilient(limiter=limiter), max_tokens=5000)
    assert usage is not None
    # Only what was used stays spent; the 5000 reserved for the answer came back.
    assert limiter._tokens is not None
    assert limiter._tokens.level == 100_000 - usage.total_tokens


async def read_then_close(llm: ResilientLLM, n: int) -> float:
    """Read `n` deltas, then close the generator as a disconnecting client would."""
    events = llm.stream(MESSAGES, max_tokens=1024)
    assert isinstance(events, AsyncGenerator)
    for _ in range(n):
        assert isinstance(await anext(events), TextDelta)
    closed_at = time.monotonic()
    await events.aclose()
    return closed_at


async def test_closing_the_stream_hangs_up_upstream(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.configure(reply=LONG_REPLY, chunk_interval=0.005)
    closed_at = await read_then_close(resilient(), 3)
    [request] = await openai_stub.await_until(
        lambda rs: bool(rs) and rs[0].disconnected_at is not None, timeout=1.0
    )
    assert request.disconnected_at is not None and request.disconnected_at - closed_at < 1.0
    assert not request.completed


async def test_cancelled_consumer_hangs_up_upstream(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.configure(reply=LONG_REPLY, chunk_interval=0.005)
    llm = resilient()
    got_three = asyncio.Event()

    async def consume() -> None:
        count = 0
        async for event in llm.stream(MESSAGES, max_tokens=1024):
            count += isinstance(event, TextDelta)
            if count == 3:
                got_three.set()

    task = asyncio.create_task(consume())
    await got_three.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await openai_stub.await_until(lambda rs: rs[0].disconnected_at is not None, timeout=1.0)


async def test_a_hundred_early_closes_leak_no_tasks_or_descriptors(
    openai_stub: StubServer, resilient: MakeResilient
) -> None:
    openai_stub.configure(reply=LONG_REPLY, chunk_interval=0.002)
    llm = resilient()
    await read_then_close(llm, 3)  # warm-up: imports, the client's pool, the stub's listener
    await openai_stub.await_until(lambda rs: all(r.disconnected_at for r in rs), timeout=2.0)
    tasks_before, fds_before = other_tasks(), open_fds()

    for _ in range(100):
        await read_then_close(llm, 3)

    await openai_stub.await_until(
        lambda rs: len(rs) == 101 and all(r.disconnected_at for r in rs), timeout=5.0
    )
    # An async generator dropped mid-iteration (the HTTP client's body readers) is closed by a
    # short task the event loop schedules itself; a leak is one still there seconds later.
    deadline = time.monotonic() + 2.0
    while other_tasks() - tasks_before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert other_tasks() - tasks_before == set()
    while open_fds() > fds_before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # the stub's thread closes its side of each socket
    assert open_fds() <= fds_before


async def test_usage_is_the_last_event(resilient: MakeResilient) -> None:
    _, usage, events = await collect(resilient())
    assert isinstance(events[-1], Usage) and usage is events[-1]
    assert all(isinstance(e, TextDelta) for e in events[:-1])
