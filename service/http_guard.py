"""What keeps a browser from being turned against the service, and the headers that help.

- `Host` must name this service (CITELINE_ALLOWED_HOSTS; by default the loopback names and
  CITELINE_HOST), else 421: a page on a rebound DNS name cannot read the corpus. Health probes
  are exempt (a load balancer may name the address).
- A state-changing request (not GET/HEAD/OPTIONS) with an `Origin` that is neither this
  service's own nor in CITELINE_CORS_ORIGINS is refused with 403, before any route runs.
- Bodies: a route reads JSON only (`application/json` or `+json`), else 415; multipart only on
  routes that take files (`require_json_body`, a dependency of every route).
- Every response gets `nosniff`, a CSP that lets the chat page (and only same-origin code) run,
  frame-ancestors 'none', and no referrer.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.params import File
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import UnsupportedMediaType, problem

__all__ = ["CSP", "DOCS_CSP", "BrowserGuard", "require_json_body"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets inline styles on its elements; its scripts still come from this origin only.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PROBES = frozenset({"/healthz", "/readyz"})


def host_name(host: str) -> str:
    """`Host` without its port, lower case: `[::1]:8000` -> `::1`, `A.test.:80` -> `a.test`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


class BrowserGuard:
    """Pure ASGI: one pass over the request headers, one list extended per response."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: frozenset[str] | None, origins: list[str]
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.any_origin = "*" in origins
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        refusal = self._refusal(scope, host, origin)
        if refusal is not None:
            status, detail = refusal
            await problem(status, detail, instance=scope["path"])(scope, receive, _secure(send))
            return
        await self.app(scope, receive, _secure(send))

    def _refusal(self, scope: Scope, host: str, origin: str) -> tuple[int, str] | None:
        allowed = self.allowed_hosts
        if allowed is not None and scope["path"] not in _PROBES and host_name(host) not in allowed:
            return 421, (
                f"this service does not answer for host {host[:100]!r}; add it to "
                "CITELINE_ALLOWED_HOSTS"
            )
        if origin and scope["method"] not in _SAFE_METHODS and not self._origin_ok(origin, host):
            return 403, (
                f"cross-site request from origin {origin[:100]!r} refused; allow it in "
                "CITELINE_CORS_ORIGINS"
            )
        return None

    def _origin_ok(self, origin: str, host: str) -> bool:
        if origin in self.origins or (self.any_origin and origin != "null"):
            return True
        _, sep, netloc = origin.partition("://")
        return bool(sep) and netloc.lower() == host.lower()  # the service's own page


def _secure(send: Send) -> Send:
    async def send_secure(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(k == b"content-security-policy" for k, _ in headers):
                headers.append((b"content-security-policy", CSP.encode()))
            message = {**message, "headers": headers + _SECURITY_HEADERS}
        await send(message)

    return send_secure


_FILE_ROUTES: dict[int, bool] = {}


def _takes_files(route: APIRoute) -> bool:
    """A route takes multipart/form-data when its parameters say so (FastAPI's `File`) or when
    its documented request body does (routes that read the stream themselves)."""
    body = (route.openapi_extra or {}).get("requestBody", {})
    return "multipart/form-data" in body.get("content", {}) or _has_file_params(route.dependant)


def _has_file_params(dependant: Dependant) -> bool:
    if any(isinstance(p.field_info, File) for p in dependant.body_params):
        return True
    return any(_has_file_params(d) for d in dependant.dependencies)


async def require_json_body(request: Request) -> None:
    """415 for a body that is not JSON, but multipart/form-data where a route takes files."""
    if request.method in _SAFE_METHODS:
        return
    headers = request.headers
    has_body = headers.get("transfer-encoding") or headers.get("content-length", "0") != "0"
    if not has_body:
        return
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    route = request.scope.get("route")
    if media == "multipart/form-data" and isinstance(route, APIRoute):
        takes = _FILE_ROUTES.get(id(route))
        if takes is None:
            takes = _FILE_ROUTES[id(route)] = _takes_files(route)
        if takes:
            return
    raise UnsupportedMediaType(
        f"this route reads application/json, not {media or 'a body without a content type'!r}"
    )
