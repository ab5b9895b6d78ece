"""Typed dependencies: each route asks for the collaborators it uses, by name.

Identity and access: `PrincipalDep` is the authenticated caller (401 without a valid key,
429 past its request rate); `TenantDep` its tenant, the scope of every read and write.
A route states what it needs with `ReadAccess`, `WriteAccess` or `AdminAccess` (the
principal, once the scope is checked: 403 otherwise) and turns each collection it is asked
about into a `Scope` with `principal.scope_of(name)` (403 outside the key's list).
`tests/unit/test_access.py` checks that every API route depends on one of the three.

Tests replace a dependency with FastAPI's `dependency_overrides` (passed to `create_app`),
never by changing a running runtime.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, Header, Request

from service.auth.keys import KeyStore
from service.auth.principal import DEFAULT_TENANT, Permission, Principal
from service.catalog.base import JobRegistry
from service.config import Settings
from service.documents import Documents
from service.errors import Forbidden, Unauthorized
from service.evaluation.jobs import Evaluations
from service.jobs.base import JobQueue
from service.pricing import Pricing
from service.query.ask import Asker
from service.query.retrieval import Retriever
from service.quotas.metering import Metering
from service.quotas.rates import RateLimits
from service.quotas.streams import StreamSlots
from service.quotas.usage import UsageLedger
from service.runtime import Runtime
from service.store.base import VectorStore
from service.streams.resume import Runs
from service.telemetry import logs

__all__ = [
    "DEFAULT_TENANT",
    "AdminAccess",
    "EvaluationsDep",
    "PrincipalDep",
    "ReadAccess",
    "TenantDep",
    "WriteAccess",
    "admit_caller",
    "get_principal",
    "require",
]

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


async def get_keys(request: Request) -> KeyStore:
    return _runtime(request).auth.store


async def get_limits(request: Request) -> RateLimits:
    return _runtime(request).limits


async def get_metering(request: Request) -> Metering:
    return _runtime(request).metering


async def get_streams(request: Request) -> StreamSlots:
    return _runtime(request).streams


async def get_usage(request: Request) -> UsageLedger:
    return _runtime(request).usage


async def get_evaluations(request: Request) -> Evaluations:
    return _runtime(request).evaluations


async def get_principal(request: Request) -> Principal:
    """The caller: its key checked, one request counted against its rate and its tenant."""
    return await admit_caller(_runtime(request), request.headers)


async def admit_caller(runtime: Runtime, headers: Mapping[str, str]) -> Principal:
    """What every request goes through, REST or MCP: the key checked, the caller's rate
    counted (429 past it), one request on its tenant's usage."""
    principal = await runtime.auth.authenticate(headers)
    # The key id (never the secret) and the tenant, on every later log line of the request.
    logs.set_caller(key_id=principal.key_id, tenant=principal.tenant)
    await runtime.limits.admit(principal)
    runtime.usage.count_request(principal.tenant)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_tenant(principal: PrincipalDep) -> str:
    return principal.tenant


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency answering the principal once it holds `permission` (else 403)."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(permission)
        return principal

    check.__name__ = f"require_{permission}"
    return check


require_read, require_write, require_admin = require("read"), require("write"), require("admin")
SCOPE_CHECKS = frozenset({require_read, require_write, require_admin})


def _check_bearer(expected: str, authorization: str | None) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip(), expected)


async def _operator(request: Request, authorization: str | None) -> bool:
    """Whether the caller holds the admin key (CITELINE_ADMIN_API_KEY)."""
    runtime = _runtime(request)
    if runtime.auth.open_mode or authorization is None:
        return False
    try:
        return (await runtime.auth.authenticate(request.headers)).kind == "root"
    except Unauthorized:
        return False


async def metrics_access(
    request: Request,
    authorization: Annotated[str | None, Header(max_length=1024)] = None,
) -> None:
    """/metrics: the CITELINE_METRICS_TOKEN bearer token or the admin key; while no token is
    set, open in open mode (loopback only) and the admin key's once keys are required."""
    settings = _runtime(request).settings
    expected = settings.metrics_bearer
    if expected is None and settings.open_mode:
        return
    if (expected is not None and _check_bearer(expected, authorization)) or await _operator(
        request, authorization
    ):
        return
    raise Unauthorized(
        "this route needs `Authorization: Bearer <CITELINE_METRICS_TOKEN>` or the admin key"
    )


async def admin_access(
    request: Request,
    authorization: Annotated[str | None, Header(max_length=1024)] = None,
) -> None:
    """Operator routes (a backup holds every tenant's data): the CITELINE_METRICS_TOKEN bearer
    token or the admin key (CITELINE_ADMIN_API_KEY), never a tenant's key; refused while
    neither is set."""
    settings = _runtime(request).settings
    expected = settings.metrics_bearer
    if expected is None and settings.open_mode:
        raise Forbidden(
            "admin routes are off: set CITELINE_METRICS_TOKEN or CITELINE_ADMIN_API_KEY"
        )
    if (expected is not None and _check_bearer(expected, authorization)) or await _operator(
        request, authorization
    ):
        return
    raise Unauthorized("this route needs the admin key or `Bearer <CITELINE_METRICS_TOKEN>`")


# Every API route depends on one of these (tests/unit/test_access.py checks it).
ACCESS_CHECKS = frozenset({*SCOPE_CHECKS, metrics_access, admin_access})

SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[JobRegistry, Depends(get_registry)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
AskerDep = Annotated[Asker, Depends(get_asker)]
DocumentsDep = Annotated[Documents, Depends(get_documents)]
PricingDep = Annotated[Pricing, Depends(get_pricing)]
RunsDep = Annotated[Runs, Depends(get_runs)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
LimitsDep = Annotated[RateLimits, Depends(get_limits)]
MeteringDep = Annotated[Metering, Depends(get_metering)]
StreamsDep = Annotated[StreamSlots, Depends(get_streams)]
UsageDep = Annotated[UsageLedger, Depends(get_usage)]
TenantDep = Annotated[str, Depends(get_tenant)]
StoreDep = Annotated[VectorStore, Depends(get_store)]
EvaluationsDep = Annotated[Evaluations, Depends(get_evaluations)]
ReadAccess = Annotated[Principal, Depends(require_read)]
WriteAccess = Annotated[Principal, Depends(require_write)]
AdminAccess = Annotated[Principal, Depends(require_admin)]
