"""The request's identity: `X-Request-ID` on every response, and the id for logs and errors.

A client's own well-formed `X-Request-ID` (1–128 characters of letters, digits and `-_.:`) is
kept, so one id follows a call through a client's and citeline's logs; otherwise one is made.
`X-Response-Time` is the time to the response's first byte (for a stream, its start).
`request_id()` reads the current request's id anywhere below the middleware (routes, use
cases, log records); it is "" outside a request.
"""

from __future__ import annotations

import contextvars
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestContext", "request_id"]

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_WELL_FORMED = re.compile(rb"^[A-Za-z0-9\-_.:]{1,128}$")


def request_id() -> str:
    return _REQUEST_ID.get()


def _new_id() -> str:
    return "req_" + secrets.token_hex(8)


class RequestContext:
    """Pure ASGI middleware: no task or body wrapping per request, so streams pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given.decode() if _WELL_FORMED.match(given) else _new_id()
        token = _REQUEST_ID.set(rid)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", ()),
                    (b"x-request-id", rid.encode()),
                    (b"x-response-time", f"{elapsed_ms:.1f}ms".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _REQUEST_ID.reset(token)
