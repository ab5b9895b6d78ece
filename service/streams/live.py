"""Live answers on the wire: SSE frames, and the response every streaming route uses.

`LiveResponse` sends each frame as it comes, a keep-alive frame (`: ping` for SSE) after
every `ping_s` seconds of silence so that proxies and browsers keep the connection, and
cancels the stream as soon as the client disconnects, which closes the frame iterator and
with it any upstream request. It is plain asyncio around the ASGI `send`: one send per frame,
which matters at tens of thousands of frames a second (`python -m tests.bench.ttft`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["SSE_PING", "LiveResponse", "sse_frame"]

log = logging.getLogger("citeline.stream")

SSE_PING = b": ping\n\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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
    ) -> None:
        self.frames = frames
        self.ping_s = ping_s
        self.ping = ping
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)  # no Content-Length: the body is streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        streaming = asyncio.current_task()
        assert streaming is not None
        last_sent = loop.time()
        finished = gone = False

        async def watch_disconnect() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            if not finished:
                gone = True
                streaming.cancel()

        async def ping() -> None:
            while True:
                await asyncio.sleep(max(self.ping_s - (loop.time() - last_sent), 0.0))
                if loop.time() - last_sent >= self.ping_s:
                    await send({"type": "http.response.body", "body": self.ping, "more_body": True})

        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        helpers = [asyncio.create_task(watch_disconnect())]
        if self.ping_s > 0:
            helpers.append(asyncio.create_task(ping()))
        try:
            async for frame in self.frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                last_sent = loop.time()
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise  # shutdown, not the client: let it through
            streaming.uncancel()
            log.info("stream.client_gone")
        finally:
            for helper in helpers:
                helper.cancel()
            # Suspended at a `yield` (we were sending), the iterator is still open: close it,
            # which runs its cleanup (an upstream request is closed there).
            aclose = getattr(self.frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
