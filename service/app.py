"""The FastAPI application: `create_app(settings)`; `python -m service` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.config import Settings, load_settings
from service.errors import install_error_handlers
from service.limits import BodySizeLimit
from service.routes import chat, documents, health, jobs, openai_compat, query
from service.runtime import Runtime
from service.streams.resume import build_runs


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings)
        app.state.runtime = runtime
        app.state.runs = build_runs(settings)  # resumable chat streams
        try:
            yield
        finally:
            await app.state.runs.close()
            await runtime.close()

    app = FastAPI(
        title="citeline",
        version="0.1.0",
        summary="Answers grounded in your documents, with citations you can check.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origin_list:  # added last, so outermost: errors get CORS headers too
        app.add_middleware(
            chat.ProblemCORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["authorization", "content-type", "last-event-id"],
            expose_headers=["x-vercel-ai-ui-message-stream", "x-vercel-ai-data-stream"],
            max_age=600,
        )
    for module in (health, documents, jobs, query, chat, openai_compat):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=chat.STATIC_DIR), name="static")
    return app
