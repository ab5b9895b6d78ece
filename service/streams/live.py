"""Live answers on the wire: SSE frames, and the response every streaming route uses.

`LiveResponse` sends each frame as it comes, a keep-alive frame (`: ping` for SSE) after
every `ping_s` seconds of silence so that proxies and browsers keep the connection, and
cancels the stream as soon as the client disconnects, which closes the frame iterator and
with it any upstream request. When a shutdown cuts the stream (`service.ops.gate`), it sends
its format's `ending` (an error event, then the format's clean end) and closes the body.
It is plain asyncio around the ASGI `send`: one send per frame, which matters at tens of
thousands of frames a second (`python -m tests.bench.ttft`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.ops.gate import cut_by_shutdown
from service.telemetry.metrics import ACTIVE_STREAMS

__all__ = ["SHUTDOWN_MESSAGE", "SSE_PING", "LiveResponse", "sse_frame"]

log = logging.getLogger("citeline.stream")

SSE_PING = b": ping\n\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
SHUTDOWN_MESSAGE = "the service is shutting down; the answer was cut short, retry"


def sse_frame(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event: `id:` and `event:` when given, one `data:` line per line of `data`."""
    head = (f"id: {id}\n" if id is not None else "") + (
        f"event: {event}\n" if event is not None else ""
    )
    if "\n" in data or "\r" in data:
        data = "\ndata: ".join(_LINE_BREAK.split(data))
    return f"{head}data: {data}\n\n".encode()


class LiveResponse(Response):
    def __init__(
        self,
        frames: AsyncIterator[bytes],
        *,
        ping_s: float,
        headers: Mapping[str, str] | None = None,
        media_type: str = "text/event-stream",
        ping: bytes = SSE_PING,
        wire_format: str = "sse",
        ending: bytes = b"",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """`ending`: the frames that end this stream in its format if a shutdown cuts it;
        `on_close` runs once the response ends, however it ends (a stream slot's release)."""
        self.frames = frames
        self.ping_s = ping_s
        self.ping = ping
        self.wire_format = wire_format
        self.ending = ending
        self.on_close = on_close
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)  # no Content-Length: the body is streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        wire = _Wire(send, asyncio.get_running_loop())
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        helpers = [asyncio.create_task(self._watch_disconnect(receive, wire, streaming))]
        if self.ping_s > 0:
            helpers.append(asyncio.create_task(self._ping(wire)))
        active = ACTIVE_STREAMS.labels(self.wire_format)
        active.inc()
        try:
            async for frame in self.frames:
                await wire.body(frame)
            wire.finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if wire.gone:
                streaming.uncancel()
                log.info("stream.client_gone")
            elif cut_by_shutdown():
                streaming.uncancel()
                await self._end(wire, helpers)
            else:
                raise  # the server cancelled us: let it through
        finally:
            active.dec()
            for helper in helpers:
                helper.cancel()
            # Suspended at a `yield` (we were sending), the iterator is still open: close it,
            # which runs its cleanup (an upstream request is closed there).
            aclose = getattr(self.frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _end(self, wire: _Wire, helpers: list[asyncio.Task[None]]) -> None:
        """The shutdown's end of the stream: its closing frames, then the end of the body."""
        for helper in helpers:
            helper.cancel()  # no ping may interleave with the closing frames
        log.info("stream.cut_by_shutdown", extra={"format": self.wire_format})
        with contextlib.suppress(OSError):
            if self.ending:
                await wire.body(self.ending)
            wire.finished = True
            await wire.send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch_disconnect(
        receive: Receive, wire: _Wire, streaming: asyncio.Task[Any]
    ) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not wire.finished:
            wire.gone = True
            streaming.cancel()

    async def _ping(self, wire: _Wire) -> None:
        while True:
            await asyncio.sleep(max(self.ping_s - wire.silent_s(), 0.0))
            if wire.silent_s() >= self.ping_s:
                await wire.body(self.ping)  # a ping is traffic: the next is due an interval on


class _Wire:
    """One response's send side: when it last sent, and how it ended."""

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self.send, self.loop = send, loop
        self.last_sent = loop.time()
        self.finished = False  # every frame went out
        self.gone = False  # the client disconnected first

    async def body(self, frame: bytes) -> None:
        await self.send({"type": "http.response.body", "body": frame, "more_body": True})
        self.last_sent = self.loop.time()

    def silent_s(self) -> float:
        return self.loop.time() - self.last_sent
