"""One HTTP exchange as the stub's ASGI app handles it: sending, disconnect watching, recording."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tests.stubs.stub_state import AppliedFaults, RecordedRequest, StubState

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class StubAbort(Exception):
    """Raised inside the app so uvicorn drops the TCP connection mid-response (close_after)."""


class Exchange:
    """One request/response: sends bytes, watches for the client leaving, updates the record."""

    def __init__(self, state: StubState, rec: RecordedRequest, receive: Receive, send: Send):
        self.state, self.rec, self._receive, self._send = state, rec, receive, send
        self.disconnected = asyncio.Event()
        self._finishing = False
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        # uvicorn also answers http.disconnect once the response is complete, hence _finishing.
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self._finishing:
                    self.state.update(self.rec, disconnected_at=time.monotonic())
                self.disconnected.set()
                return

    async def wait_disconnect(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the client has gone."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return self.disconnected.is_set()
        try:
            await asyncio.wait_for(self.disconnected.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def start(self, status: int, content_type: str, extra: dict[str, str]) -> None:
        self.state.update(self.rec, status=status)
        headers = {
            "content-type": content_type,
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
            **extra,
        }
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )

    async def body(self, data: bytes, *, more: bool, completes: bool = True) -> None:
        """Send body bytes; the last send marks the record completed unless `completes` is False."""
        if not more:
            self._finishing = True
        await self._send({"type": "http.response.body", "body": data, "more_body": more})
        if not more and completes and not self.disconnected.is_set():
            self.state.update(self.rec, completed=True)

    async def json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        await self.start(status, "application/json", extra or {})
        await self.body(json.dumps(payload).encode(), more=False)

    async def close(self) -> None:
        self._watcher.cancel()


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def padded(payload: dict[str, Any], faults: AppliedFaults) -> dict[str, Any]:
    oversize = faults.modifiers.get("oversized_body")
    if oversize is None:
        return payload
    missing = oversize["nbytes"] - len(json.dumps(payload))
    return {**payload, "x_stub_padding": "x" * max(missing, 0)}
