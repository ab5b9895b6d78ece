"""Per-request observation: the duration histogram, the access line and the server span.

Pure ASGI, like `RequestContext` just outside it, so streams pass through untouched. The
route label is the matched route's template (read from the scope after routing), never the
raw path: `/v1/jobs/{job_id}`, not one series per job.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.telemetry import tracing
from service.telemetry.metrics import HTTP_DURATION

log = logging.getLogger("citeline.http")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_GONE = 499  # no response was started: the client left first (nginx's convention)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class Observe:
    def __init__(self, app: ASGIApp, *, metrics: bool, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = CLIENT_GONE

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"] if scope["method"] in _METHODS else "other"
        with tracing.request_span(method, scope["path"], scope["headers"]) as span:
            try:
                await self.app(scope, receive, send_status)
            except Exception:
                status = 500
                raise
            finally:
                self._record(scope, method, status, time.perf_counter() - started, span)

    def _record(self, scope: Scope, method: str, status: int, elapsed: float, span: object) -> None:
        route = route_template(scope)
        if self.metrics:
            HTTP_DURATION.labels(method, route, str(status)).observe(elapsed)
        if span is not None:
            span.update_name(f"{method} {route}")  # type: ignore[attr-defined]
            span.set_attribute("http.route", route)  # type: ignore[attr-defined]
            span.set_attribute("http.response.status_code", status)  # type: ignore[attr-defined]
        if self.access_log and log.isEnabledFor(logging.INFO):
            log.info(
                "http.request",
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
