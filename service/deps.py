"""Typed dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.runtime import Runtime

DEFAULT_TENANT = "default"


# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in a thread pool,
# two thread hops per request that cost milliseconds under load.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_tenant() -> str:
    """Every request runs as tenant `default` until API keys map callers to tenants."""
    return DEFAULT_TENANT


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
TenantDep = Annotated[str, Depends(get_tenant)]
