"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.catalog.base import RegistryUnavailable
from service.errors import Unavailable, problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503))
async def readyz(request: Request) -> dict[str, Any]:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise Unavailable("starting up", retry_after=1)
    try:
        jobs = await runtime.registry.counts()
    except RegistryUnavailable:  # Redis is down: writes get 503, but queries are still served
        return {"status": "degraded", "jobs": None, "inflight": runtime.queue.inflight}
    return {"status": "ready", "jobs": jobs, "inflight": runtime.queue.inflight}


# HEAD answers like GET without a body (load balancers probe with it); not a separate operation.
for _path, _endpoint in (("/healthz", healthz), ("/readyz", readyz)):
    router.add_api_route(_path, _endpoint, methods=["HEAD"], include_in_schema=False)
