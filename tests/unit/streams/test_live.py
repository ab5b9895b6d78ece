"""LiveResponse as an ASGI app: frames in order, pings in silence, a disconnect cancels the
stream and closes its iterator, a shutdown cancellation goes through; and SSE framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.streams.live import SSE_PING, LiveResponse, sse_frame


class Client:
    """The ASGI side: records what the response sends, and disconnects on demand."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.changed = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.changed.set()

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]

    async def until(self, predicate: Any) -> None:
        while not predicate():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=5)


class Frames:
    """A frame iterator that blocks until released, and says whether it was closed."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = False

    async def run(self) -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await self.release.wait()
            yield b"second"
        finally:
            self.closed = True


def test_sse_frame_layout() -> None:
    assert sse_frame('{"a":1}') == b'data: {"a":1}\n\n'
    assert sse_frame("x", event="delta", id="7") == b"id: 7\nevent: delta\ndata: x\n\n"
    # every line break style becomes its own data line; nothing can end the event early
    assert sse_frame("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert sse_frame("\n\n") == b"data: \ndata: \ndata: \n\n"


async def test_frames_then_the_end_with_headers() -> None:
    frames = Frames()
    frames.release.set()
    client = Client()
    response = LiveResponse(frames.run(), ping_s=0, headers={"X-Accel-Buffering": "no"})
    await response({"type": "http"}, client.receive, client.send)
    start = client.sent[0]
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"x-accel-buffering"] == b"no" and b"content-length" not in headers
    assert client.bodies() == [b"first", b"second", b""]
    assert client.sent[-1]["more_body"] is False and frames.closed


async def test_silence_gets_pings_and_frames_keep_their_order() -> None:
    frames = Frames()
    client = Client()
    response = LiveResponse(frames.run(), ping_s=0.01, ping=SSE_PING)
    task = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
    await client.until(lambda: client.bodies().count(SSE_PING) >= 2)
    frames.release.set()
    await task
    bodies = client.bodies()
    assert bodies[0] == b"first" and bodies[-2:] == [b"second", b""]
    assert set(bodies[1:-2]) == {SSE_PING}


async def test_a_disconnect_cancels_the_stream_and_closes_the_frames() -> None:
    frames = Frames()
    client = Client()
    response = LiveResponse(frames.run(), ping_s=0)
    task = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
    await client.until(lambda: client.bodies() == [b"first"])
    client.gone.set()  # the frames are blocked upstream: only the disconnect can end them
    await asyncio.wait_for(task, timeout=5)
    assert frames.closed and not task.cancelled()
    assert client.bodies() == [b"first"]  # no end-of-body sent to a client that left


async def test_a_cancellation_from_outside_goes_through() -> None:
    frames = Frames()
    client = Client()
    response = LiveResponse(frames.run(), ping_s=0)
    task = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
    await client.until(lambda: client.bodies() == [b"first"])
    task.cancel()  # server shutdown, not the client
    with pytest.raises(asyncio.CancelledError):
        await task
    assert frames.closed


async def test_pings_are_paced_one_per_interval_of_silence() -> None:
    """A ping is itself traffic: the next one is due a whole interval later, not at once."""
    frames = Frames()
    client = Client()
    response = LiveResponse(frames.run(), ping_s=0.05, ping=SSE_PING)
    task = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.until(lambda: client.bodies().count(SSE_PING) >= 3)
    elapsed = loop.time() - started
    pings = client.bodies().count(SSE_PING)
    frames.release.set()
    await task
    assert elapsed >= 3 * 0.05 * 0.9  # three intervals of silence for three pings
    assert pings == 3
