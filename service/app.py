"""The FastAPI application: `create_app(settings)`; `python -m service` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from schemas.documents import BatchIn, DocumentIn
from service.access_docs import document_access
from service.config import Settings, load_settings
from service.errors import install_error_handlers
from service.http_guard import BrowserGuard, require_json_body
from service.limits import BodySizeLimit
from service.mcp_server import build_mcp, mount_mcp
from service.ops.gate import Drain, Gate
from service.ops.http import Observe
from service.request_context import RequestContext
from service.routes import (
    access,
    batches,
    chat,
    docs,
    documents,
    evaluations,
    health,
    jobs,
    openai_compat,
    ops,
    query,
)
from service.runtime import Runtime
from service.telemetry import metrics

# Request bodies read by a dependency rather than a parameter, so FastAPI does not see them.
_EXTRA_SCHEMAS = (BatchIn, DocumentIn)


def create_app(
    settings: Settings | None = None,
    *,
    dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
) -> FastAPI:
    """The app; `dependency_overrides` (of `service.deps` functions) is the test seam."""
    settings = settings or load_settings()
    metrics.configure(settings.metrics_tenant_labels)
    drain = Drain()  # `service.ops.server` drains it on SIGTERM before the lifespan ends

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings)
        app.state.runtime = runtime
        try:
            async with app.state.mcp.session_manager.run():  # stateless: no sessions kept
                yield
        finally:
            await runtime.close(wait_s=drain.remaining_s())  # jobs: the rest of the grace

    app = FastAPI(
        title="citeline",
        version="0.1.0",
        summary="Answers grounded in your documents, with citations you can check.",
        lifespan=lifespan,
        docs_url=None,  # served from a package by `routes.docs`, not from a CDN
        redoc_url=None,
        dependencies=[Depends(require_json_body)],
    )
    app.state.drain = drain
    app.state.mcp = build_mcp(app)
    app.dependency_overrides.update(dependency_overrides or {})
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        upload_bytes=settings.max_upload_bytes,
        upload_paths=frozenset({"/v1/documents", "/v1/documents/batch"}),
    )
    limits = {
        "answer": settings.max_inflight_answers,
        "search": settings.max_inflight_searches,
        "ingest": settings.max_inflight_ingest,
    }
    app.add_middleware(Gate, limits=limits, drain=drain)
    if settings.cors_origin_list:  # outside the others: errors get CORS headers too
        app.add_middleware(
            chat.ProblemCORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "authorization",
                "x-api-key",
                "content-type",
                "last-event-id",
                "mcp-protocol-version",  # browser MCP clients send it after initialize
            ],
            expose_headers=[
                "x-vercel-ai-ui-message-stream",
                "x-vercel-ai-data-stream",
                "x-request-id",
            ],
            max_age=600,
        )
    app.add_middleware(
        BrowserGuard, allowed_hosts=settings.allowed_host_names, origins=settings.cors_origin_list
    )
    app.add_middleware(Observe, metrics=settings.metrics_enabled, access_log=settings.access_log)
    app.add_middleware(RequestContext)  # outermost: every response, CORS refusals too, has an id
    for module in (
        health,
        documents,
        jobs,
        batches,
        query,
        evaluations,
        chat,
        openai_compat,
        access,
        docs,
    ):
        app.include_router(module.router)
    if settings.metrics_enabled:
        app.include_router(ops.metrics_router)
    app.include_router(ops.admin_router)
    mount_mcp(app, app.state.mcp)
    app.mount("/static", StaticFiles(directory=chat.STATIC_DIR), name="static")
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.ASSETS), name="docs-assets")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the schemas of bodies that routes parse themselves."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in _EXTRA_SCHEMAS:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = schema
        document_access(spec, app.routes)
        app.openapi_schema = spec
    return app.openapi_schema
