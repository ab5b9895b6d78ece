"""Admission and drain: a bounded number of requests in flight per kind, and a clean stop.

Admission: answers (query, stream, chat, completions, stream resumption), searches and
document posts each have an in-flight limit (CITELINE_MAX_INFLIGHT_*); one more is answered
503 with Retry-After at once, so overload turns into quick refusals instead of a pile of
requests that all time out. Other requests (reads, health, metrics) are not limited.

Drain (`Drain.close`, on SIGTERM): new requests get 503 + `Connection: close`; running ones
have the grace period to finish; then each is cut: a stream ends in its own format (the
response sees `cut_by_shutdown()` and sends its closing frames), a request that has not
started its response gets a problem+json 503.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import problem
from service.telemetry.metrics import HTTP_INFLIGHT, HTTP_REJECTED

log = logging.getLogger("citeline.shutdown")

__all__ = ["Drain", "Gate", "cut_by_shutdown", "request_kind"]

# An MCP call's tool is inside its body: each counts as an answer, the costliest kind.
_ANSWER_PATHS = frozenset({"/v1/query", "/v1/stream", "/api/chat", "/v1/chat/completions", "/mcp"})
_INGEST_PATHS = frozenset({"/v1/documents", "/v1/documents/batch", "/v1/index"})
SHUTDOWN_RETRY_AFTER = "1"
OVERLOAD_RETRY_AFTER = "1"


def request_kind(method: str, path: str) -> str:
    """`answer`, `search`, `ingest`, or `other` (not limited)."""
    if method == "POST":
        if path in _ANSWER_PATHS:
            return "answer"
        if path == "/v1/search":
            return "search"
        if path in _INGEST_PATHS:
            return "ingest"
    elif method == "GET" and path.startswith("/api/chat/") and path.endswith("/stream"):
        return "answer"
    return "other"


@dataclass(eq=False)
class _Request:
    task: asyncio.Task[object] | None
    started: bool = False  # the response has begun: only the response itself can end it now
    cut: bool = False  # cancelled by the drain, not by the client or the server

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.cut = True
            self.task.cancel()


_CURRENT: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "gate_request", default=None
)


def cut_by_shutdown() -> bool:
    """True inside a request whose cancellation came from the drain."""
    current = _CURRENT.get()
    return current is not None and current.cut


@dataclass
class Drain:
    """The requests in flight, and the shutdown that waits for them, then cuts them."""

    closing: bool = False
    deadline: float | None = None  # loop time at which the grace period ends
    _requests: set[_Request] = field(default_factory=set)
    _idle: asyncio.Event | None = None

    def add(self, request: _Request) -> None:
        self._requests.add(request)

    def discard(self, request: _Request) -> None:
        self._requests.discard(request)
        if not self._requests and self._idle is not None:
            self._idle.set()

    @property
    def inflight(self) -> int:
        return len(self._requests)

    def remaining_s(self) -> float | None:
        """Seconds left of the grace period (None: no shutdown has started)."""
        if self.deadline is None:
            return None
        return max(self.deadline - asyncio.get_running_loop().time(), 0.0)

    async def close(self, grace_s: float, cut_wait_s: float = 0.5) -> None:
        """Refuse new requests, wait up to `grace_s` for running ones, then cut the rest."""
        loop = asyncio.get_running_loop()
        self.closing = True
        self.deadline = loop.time() + grace_s
        self._idle = asyncio.Event()
        if not self._requests:
            self._idle.set()
        log.info("shutdown.draining", extra={"requests": len(self._requests), "grace_s": grace_s})
        if await self._wait_idle(grace_s):
            return
        log.warning("shutdown.cutting", extra={"requests": len(self._requests)})
        for request in list(self._requests):
            request.abort()
        if not await self._wait_idle(cut_wait_s):
            log.warning("shutdown.unfinished", extra={"requests": len(self._requests)})

    async def _wait_idle(self, timeout_s: float) -> bool:
        assert self._idle is not None
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class Gate:
    """Pure ASGI middleware: admission per kind, and the drain's view of each request."""

    def __init__(self, app: ASGIApp, *, limits: Mapping[str, int], drain: Drain) -> None:
        self.app = app
        self.limits = dict(limits)
        self.drain = drain
        self.inflight = dict.fromkeys(self.limits, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = request_kind(scope["method"], scope["path"])
        if self.drain.closing:
            detail = "the service is shutting down; retry (another instance will answer)"
            await self._refuse(scope, receive, send, kind, "shutdown", detail)
            return
        limit = self.limits.get(kind)
        if limit is not None and self.inflight[kind] >= limit:
            detail = f"too many {kind} requests in flight ({limit}); retry shortly"
            await self._refuse(scope, receive, send, kind, "overload", detail)
            return
        await self._serve(scope, receive, send, kind, limit is not None)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, kind: str, counted: bool
    ) -> None:
        request = _Request(asyncio.current_task())
        token = _CURRENT.set(request)
        self.drain.add(request)
        if counted:
            self.inflight[kind] += 1
            HTTP_INFLIGHT.labels(kind).inc()

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                request.started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except asyncio.CancelledError:
            if not request.cut or request.task is None:
                raise
            request.task.uncancel()
            if not request.started:
                detail = "the service shut down before this request was answered; retry"
                await self._problem(scope, receive, send, detail, SHUTDOWN_RETRY_AFTER)
        finally:
            if counted:
                self.inflight[kind] -= 1
                HTTP_INFLIGHT.labels(kind).dec()
            self.drain.discard(request)
            _CURRENT.reset(token)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, kind: str, reason: str, detail: str
    ) -> None:
        HTTP_REJECTED.labels(kind, reason).inc()
        retry_after = SHUTDOWN_RETRY_AFTER if reason == "shutdown" else OVERLOAD_RETRY_AFTER
        await self._problem(scope, receive, send, detail, retry_after, close=reason == "shutdown")

    @staticmethod
    async def _problem(
        scope: Scope, receive: Receive, send: Send, detail: str, retry_after: str, *,
        close: bool = True,
    ) -> None:  # fmt: skip
        headers = {"Retry-After": retry_after}
        if close:
            headers["Connection"] = "close"
        response = problem(503, detail, instance=scope["path"], headers=headers)
        await response(scope, receive, send)
