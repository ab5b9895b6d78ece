"""A tiny Anthropic Messages endpoint on loopback: streams a fixed reply, or fails on demand."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import uvicorn

Message = dict[str, Any]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class _Cut(Exception):
    """Raised inside the app so uvicorn drops the connection mid-stream."""


class FakeAnthropic:
    """`base_url` for AsyncAnthropic; `requests` holds each JSON body; `fail` queues errors."""

    def __init__(
        self, reply: tuple[str, ...] = ("Etna ", "is in ", "Sicily [1]."), input_tokens: int = 42
    ) -> None:
        self.reply = reply
        self.input_tokens = input_tokens
        self.requests: list[dict[str, Any]] = []
        self.cut_after: int | None = None  # drop the connection after this many deltas
        self._errors: list[tuple[int, str]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def fail(self, status: int, error_type: str = "overloaded_error", n: int = 1) -> None:
        self._errors.extend([(status, error_type)] * n)

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append(json.loads(body))
        if self._errors:
            status, kind = self._errors.pop(0)
            payload = json.dumps({"type": "error", "error": {"type": kind, "message": kind}})
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after-ms", b"10")],
                }
            )
            await send({"type": "http.response.body", "body": payload.encode()})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        model = self.requests[-1]["model"]
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
            },
        }
        events = [
            _sse("message_start", start),
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        for i, piece in enumerate(self.reply):
            if self.cut_after is not None and i >= self.cut_after:
                for event in events:
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                raise _Cut("cut")
            events.append(
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        events += [
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(self.reply)},
                },
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
        await send({"type": "http.response.body", "body": b"".join(events)})

    def __enter__(self) -> FakeAnthropic:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self, log_config=None, access_log=False, lifespan="off")
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:  # uvicorn offers no event to wait on
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Anthropic server did not start")
            time.sleep(0.005)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
