"""One error base carrying its HTTP status, rendered as RFC 9457 problem+json.

ServiceError                raised by routes and use cases
├── BadRequest (400)        input that validates but cannot be served (e.g. a bad filter value)
├── Unauthorized (401)      no valid API key (or operator token); carries `WWW-Authenticate`
├── Forbidden (403)         the key lacks a scope, the collection is outside its list, or a
│                           route the settings turned off
├── NotFound (404)          unknown document or job (or another tenant's: never 403)
├── PayloadTooLarge (413)   request body, file, document or storage quota over a limit
├── UnsupportedMediaType (415)  a body that is not JSON where JSON is read, or a file of a
│                           type citeline does not read
├── TooManyRequests (429)   a rate limit or a stream cap; carries Retry-After and RateLimit
└── Unavailable (503)       a dependency is down or saturated; carries Retry-After

The lower layers raise their own errors, mapped here once (`install_error_handlers`):
catalog `RegistryUnavailable`, queue `QueueUnavailable` and store `StoreError` are 503 with
Retry-After; an embedder's failure on the query path is 503 (transient) or 502, with a fixed
message (what the provider said goes to the log under the request id). Anything else
unexpected is a 500 with a fixed message, never a traceback.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import Problem
from service.catalog.base import RegistryUnavailable
from service.embeddings.dense import EmbeddingError, TransientEmbeddingError
from service.jobs.base import QueueUnavailable
from service.request_context import request_id
from service.store.base import StoreError

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


class Unauthorized(ServiceError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status, title = 403, "Forbidden"


class NotFound(ServiceError):
    status, title = 404, "Not Found"


class PayloadTooLarge(ServiceError):
    status, title = 413, "Content Too Large"


class UnsupportedMediaType(ServiceError):
    status, title = 415, "Unsupported Media Type"


class TooManyRequests(ServiceError):
    status, title = 429, "Too Many Requests"

    def __init__(
        self, detail: str, *, retry_after: float, policy: str, limit: int, remaining: int = 0
    ) -> None:
        """`policy` names the limit in the RateLimit headers (IETF httpapi draft)."""
        wait = max(1, math.ceil(retry_after))
        super().__init__(
            detail,
            headers={
                "Retry-After": str(wait),
                "RateLimit-Policy": f'"{policy}";q={limit}',
                "RateLimit": f'"{policy}";r={max(remaining, 0)};t={wait}',
            },
        )


class Unavailable(ServiceError):
    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: float = 1.0) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, round(retry_after)))})


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for routes that can answer these statuses, and those every route
    can answer: 400 (a body that is not even JSON), 422 (invalid input) and 500."""
    schema = {"application/problem+json": {"schema": Problem.model_json_schema()}}
    return {
        status: {"description": HTTPStatus(status).phrase, "content": schema}
        for status in sorted({*statuses, 400, 422, 500})
    }


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
    if rid := request_id():
        body["request_id"] = rid  # the key to this request's lines in the server log
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

    @app.exception_handler(RegistryUnavailable)
    async def _registry(request: Request, exc: RegistryUnavailable) -> JSONResponse:
        return _unavailable(request, exc.detail, exc.retry_after)

    @app.exception_handler(QueueUnavailable)
    async def _queue(request: Request, exc: QueueUnavailable) -> JSONResponse:
        return _unavailable(request, exc.detail, exc.retry_after)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        log.warning("store.failed", extra={"error": str(exc)})
        return _unavailable(request, "the vector store did not answer; retry later", 2.0)

    @app.exception_handler(EmbeddingError)
    async def _embedder(request: Request, exc: EmbeddingError) -> JSONResponse:
        log.warning("embedding.failed", extra={"error": str(exc), "detail": exc.detail})
        if isinstance(exc, TransientEmbeddingError):
            retry = exc.retry_after or 2.0
            return _unavailable(request, "the embedding model is unavailable; retry later", retry)
        return problem(502, "the embedding model failed to answer", instance=request.url.path)

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


def _unavailable(request: Request, detail: str, retry_after: float) -> JSONResponse:
    error = Unavailable(detail, retry_after=retry_after)
    return problem(503, detail, instance=request.url.path, headers=error.headers)
