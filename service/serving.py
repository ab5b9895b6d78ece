"""How the service meets the network: uvicorn with bounds on what a client may send.

uvicorn bounds neither how long a request's head may take to arrive nor (with httptools) its
size, so one client trickling bytes could hold a connection open for ever. `guarded_protocol`
is uvicorn's httptools protocol with:

- a deadline for the request line and headers (CITELINE_HEADER_TIMEOUT_S), from the connection
  or the request's first byte; a late head gets 408 and the connection is closed;
- a deadline for the whole body (CITELINE_BODY_TIMEOUT_S) once the head is in: 408 (when no
  response has started) and closed, and the app sees the client disconnect;
- at most CITELINE_MAX_HEADERS headers and CITELINE_MAX_HEADER_BYTES bytes of request line
  and headers (431 past either).

`check_exposure` refuses to serve open mode (no admin key) on anything but loopback.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings

__all__ = ["check_exposure", "guarded_protocol", "server_config"]


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a request that breaks a limit."""


def raw_problem(status: int, detail: str) -> bytes:
    """A complete problem+json response, written straight to the socket."""
    title = HTTPStatus(status).phrase
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    head = (
        f"HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return (head + body).encode()


class GuardedProtocol(HttpToolsProtocol):
    """Set by `guarded_protocol`: the limits, as class attributes (uvicorn builds protocols)."""

    header_timeout_s = 10.0
    body_timeout_s = 60.0
    max_header_bytes = 16 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0  # raw bytes received while the head was incomplete
        self._head_size = 0  # request line and header names and values, as parsed
        self._header_count = 0
        self._refusal: tuple[int, str] | None = None

    # -- deadlines --------------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, what: str) -> None:
        self._timer = None
        started = self.cycle is not None and self.cycle.response_started and not self._in_head
        self._refuse(408, f"the request {what} did not arrive in time", respond=not started)

    def _refuse(self, status: int, detail: str, *, respond: bool = True) -> None:
        if self.transport.is_closing():
            return
        self.logger.info("request refused: %s %s", status, detail)
        if respond:
            self.transport.write(raw_problem(status, detail))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """The parser stopped: on a limit of ours (431), or on malformed input (uvicorn's 400)."""
        if self._refusal is not None:
            self._refuse(*self._refusal)
            return
        super().send_400_response(msg)

    # -- the protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _start_head(self) -> None:
        self._in_head, self._head_bytes, self._head_size, self._header_count = True, 0, 0, 0
        self._arm(self.header_timeout_s, "line and headers")

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes + 1024:
            # A head that keeps coming without completing (one endless header line).
            self._refuse(431, f"request headers exceed {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._start_head()
            self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = (431, f"a request may have at most {self.max_headers} headers")
            raise _Refused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self.max_header_bytes:
            self._refusal = (431, f"request line and headers exceed {self.max_header_bytes} bytes")
            raise _Refused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def guarded_protocol(settings: Settings) -> type[GuardedProtocol]:
    return type(
        "CitelineHttpProtocol",
        (GuardedProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
            "max_header_bytes": settings.max_header_bytes,
            "max_headers": settings.max_headers,
        },
    )


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for this app: the guarded protocol, and the given overrides."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,  # the service's own logging (service.telemetry.logs)
        "access_log": False,  # replaced by the `http.request` line, which carries the context
        # `service.ops.server` drains first; then only finished connections remain.
        "timeout_graceful_shutdown": 1,
        "http": guarded_protocol(settings),
        "server_header": False,  # no version banner
    }
    return uvicorn.Config(app, **(options | overrides))


def check_exposure(settings: Settings) -> None:
    """Open mode (no admin key) serves only on loopback: refuse anything else at start."""
    if settings.open_mode and not settings.loopback_only:
        raise SystemExit(
            f"citeline: refusing to serve on {settings.host!r} without API keys. Set "
            "CITELINE_ADMIN_API_KEY (then every request needs a key), or serve on 127.0.0.1."
        )
