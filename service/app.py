"""The FastAPI application: `create_app(settings)`; `python -m service` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.config import Settings, load_settings
from service.errors import install_error_handlers
from service.limits import BodySizeLimit
from service.routes import documents, health, jobs, query
from service.runtime import Runtime


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="citeline",
        version="0.1.0",
        summary="Answers grounded in your documents, with citations you can check.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    for module in (health, documents, jobs, query):
        app.include_router(module.router)
    return app
