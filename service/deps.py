"""Typed dependencies: each route asks for the collaborators it uses, by name.

Tests replace one with FastAPI's `dependency_overrides` (passed to `create_app`), never by
changing a running runtime.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.catalog.base import JobRegistry
from service.config import Settings
from service.documents import Documents
from service.errors import Forbidden, Unauthorized
from service.jobs.base import JobQueue
from service.pricing import Pricing
from service.query.ask import Asker
from service.query.retrieval import Retriever
from service.runtime import Runtime
from service.store.base import VectorStore
from service.streams.resume import Runs
from service.telemetry import logs

DEFAULT_TENANT = "default"

# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in a thread pool,
# two thread hops per request that cost milliseconds under load.


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> Settings:
    return _runtime(request).settings


async def get_registry(request: Request) -> JobRegistry:
    return _runtime(request).registry


async def get_queue(request: Request) -> JobQueue:
    return _runtime(request).queue


async def get_retriever(request: Request) -> Retriever:
    return _runtime(request).retriever


async def get_asker(request: Request) -> Asker:
    return _runtime(request).asker


async def get_documents(request: Request) -> Documents:
    return _runtime(request).documents


async def get_pricing(request: Request) -> Pricing:
    return _runtime(request).pricing


async def get_runs(request: Request) -> Runs:
    return _runtime(request).runs


async def get_store(request: Request) -> VectorStore:
    return _runtime(request).store


async def get_tenant() -> str:
    """Every request runs as tenant `default` until API keys map callers to tenants."""
    logs.set_caller(tenant=DEFAULT_TENANT)
    return DEFAULT_TENANT


def _check_bearer(expected: str, authorization: str | None) -> None:
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), expected):
        raise Unauthorized("this route needs `Authorization: Bearer <CITELINE_METRICS_TOKEN>`")


async def metrics_access(
    request: Request,
    authorization: Annotated[str | None, Header(max_length=1024)] = None,
) -> None:
    """/metrics: open while CITELINE_METRICS_TOKEN is unset, else that bearer token."""
    expected = _runtime(request).settings.metrics_bearer
    if expected is not None:
        _check_bearer(expected, authorization)


async def admin_access(
    request: Request,
    authorization: Annotated[str | None, Header(max_length=1024)] = None,
) -> None:
    """Admin routes: the CITELINE_METRICS_TOKEN bearer token; refused while it is unset."""
    expected = _runtime(request).settings.metrics_bearer
    if expected is None:
        raise Forbidden("admin routes are off: set CITELINE_METRICS_TOKEN to use them")
    _check_bearer(expected, authorization)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[JobRegistry, Depends(get_registry)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
AskerDep = Annotated[Asker, Depends(get_asker)]
DocumentsDep = Annotated[Documents, Depends(get_documents)]
PricingDep = Annotated[Pricing, Depends(get_pricing)]
RunsDep = Annotated[Runs, Depends(get_runs)]
TenantDep = Annotated[str, Depends(get_tenant)]
StoreDep = Annotated[VectorStore, Depends(get_store)]
