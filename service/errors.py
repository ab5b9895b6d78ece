"""One error base carrying its HTTP status, rendered as RFC 9457 problem+json.

ServiceError
├── BadRequest (400)        input that validates but cannot be served (e.g. a bad filter value)
├── NotFound (404)          unknown document or job
├── PayloadTooLarge (413)   request body over CITELINE_MAX_REQUEST_BYTES
├── Conflict (409)          state forbids the operation
└── Unavailable (503)       a dependency is down or saturated; carries Retry-After
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("citeline")

PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        if status is not None:  # an upstream's status passed through (502, 504, ...)
            self.status, self.title = status, HTTPStatus(status).phrase


class BadRequest(ServiceError):
    status, title = 400, "Bad Request"


class NotFound(ServiceError):
    status, title = 404, "Not Found"


class Conflict(ServiceError):
    status, title = 409, "Conflict"


class PayloadTooLarge(ServiceError):
    status, title = 413, "Content Too Large"


class Unavailable(ServiceError):
    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: float = 1.0) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, round(retry_after)))})


def problem(
    status: int,
    detail: str | None,
    *,
    instance: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out[:50]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return problem(
            exc.status, exc.detail, instance=request.url.path, title=exc.title, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "body"
        return problem(422, f"{where}: {first['msg']}", instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code,
            str(exc.detail) if exc.detail else None,
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The one place a bare catch is right: nothing unexpected leaves as a traceback.
        log.exception("request.failed", extra={"path": request.url.path})
        return problem(500, "An unexpected error occurred.", instance=request.url.path)
