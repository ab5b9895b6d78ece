"""Typed dependencies: each route asks for the collaborators it uses, by name.

Tests replace one with FastAPI's `dependency_overrides` (passed to `create_app`), never by
changing a running runtime.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.catalog.base import JobRegistry
from service.config import Settings
from service.documents import Documents
from service.jobs.base import JobQueue
from service.pricing import Pricing
from service.query.ask import Asker
from service.query.retrieval import Retriever
from service.runtime import Runtime
from service.streams.resume import Runs

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


async def get_tenant() -> str:
    """Every request runs as tenant `default` until API keys map callers to tenants."""
    return DEFAULT_TENANT


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[JobRegistry, Depends(get_registry)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
AskerDep = Annotated[Asker, Depends(get_asker)]
DocumentsDep = Annotated[Documents, Depends(get_documents)]
PricingDep = Annotated[Pricing, Depends(get_pricing)]
RunsDep = Annotated[Runs, Depends(get_runs)]
TenantDep = Annotated[str, Depends(get_tenant)]
