"""API keys (`/v1/keys`, the admin scope) and what a tenant spent and stores (`/v1/usage`).

The admin key (CITELINE_ADMIN_API_KEY) manages the keys of every tenant. An issued key with
the `admin` scope manages its own tenant's keys, and can hand out no more than it holds: its
scopes, and its collections when it is limited to some.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from schemas.keys import (
    KEY_ID_PATTERN,
    TENANT_PATTERN,
    KeyCreated,
    KeyIn,
    KeyList,
    KeyOut,
    KeyRevoked,
    UsageOut,
)
from service.auth.keys import KeyRecord, new_key
from service.auth.principal import Principal
from service.deps import (
    AdminAccess,
    KeysDep,
    LimitsDep,
    ReadAccess,
    RegistryDep,
    SettingsDep,
    UsageDep,
)
from service.errors import BadRequest, Forbidden, NotFound, problem_responses

router = APIRouter(prefix="/v1", tags=["keys"])

MAX_KEYS_PER_TENANT = 1000
TenantQuery = Annotated[str | None, Query(pattern=TENANT_PATTERN)]


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def key_out(r: KeyRecord) -> KeyOut:
    return KeyOut(
        id=r.id, name=r.name, tenant=r.tenant, scopes=list(r.scopes),  # type: ignore[arg-type]
        collections=None if r.collections is None else list(r.collections),
        created_at=_time(r.created_at), expires_at=_time(r.expires_at),  # type: ignore[arg-type]
    )  # fmt: skip


def _may_grant(caller: Principal, body: KeyIn) -> None:
    """A tenant's admin key stays inside its tenant and hands out no more than it holds."""
    if caller.kind == "root":
        return
    if body.tenant != caller.tenant:
        raise Forbidden(f"this API key manages the keys of tenant {caller.tenant!r} only")
    extra = set(body.scopes) - caller.scopes
    if extra:
        raise Forbidden(f"this API key cannot grant scopes it lacks: {sorted(extra)}")
    if caller.collections is not None and (
        body.collections is None or not set(body.collections) <= caller.collections
    ):
        raise Forbidden("this API key cannot grant collections outside its own list")


def _tenant_of(caller: Principal, asked: str | None) -> str | None:
    """Whose keys or usage a caller may see: the admin key any tenant's (None: all)."""
    if caller.kind == "root":
        return asked
    if asked is not None and asked != caller.tenant:
        raise Forbidden(f"this API key sees tenant {caller.tenant!r} only")
    return caller.tenant


@router.post(
    "/keys", status_code=201, response_model=KeyCreated, responses=problem_responses(403, 503)
)
async def create_key(body: KeyIn, caller: AdminAccess, store: KeysDep) -> KeyCreated:
    """A new key; its secret is in `key`, shown this once."""
    _may_grant(caller, body)
    expires = body.expires_at.timestamp() if body.expires_at is not None else None
    if expires is not None and expires <= datetime.now(UTC).timestamp():
        raise BadRequest("expires_at is in the past")
    if len(await store.list(body.tenant, MAX_KEYS_PER_TENANT)) >= MAX_KEYS_PER_TENANT:
        raise BadRequest(f"tenant {body.tenant!r} has {MAX_KEYS_PER_TENANT} keys, the limit")
    record, secret = new_key(body.name, body.tenant, body.scopes, body.collections, expires)
    await store.add(record)
    return KeyCreated(**key_out(record).model_dump(), key=secret)


@router.get("/keys", response_model=KeyList, responses=problem_responses(403, 503))
async def list_keys(caller: AdminAccess, store: KeysDep, tenant: TenantQuery = None) -> KeyList:
    """Keys without their secrets: the caller's tenant's, or with the admin key any tenant's."""
    records = await store.list(_tenant_of(caller, tenant), MAX_KEYS_PER_TENANT)
    return KeyList(keys=[key_out(r) for r in records])


@router.delete(
    "/keys/{key_id}", response_model=KeyRevoked, responses=problem_responses(403, 404, 503)
)
async def revoke_key(
    key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)], caller: AdminAccess, store: KeysDep
) -> KeyRevoked:
    """Revoke a key: every API process refuses it from its next request on."""
    if not await store.revoke(key_id, None if caller.kind == "root" else caller.tenant):
        raise NotFound(f"no API key {key_id!r}")
    return KeyRevoked(id=key_id)


@router.get("/usage", response_model=UsageOut, responses=problem_responses(403, 503))
async def usage(
    caller: ReadAccess,
    ledger: UsageDep,
    limits: LimitsDep,
    registry: RegistryDep,
    settings: SettingsDep,
    tenant: TenantQuery = None,
) -> UsageOut:
    """Today's requests, tokens and cost, and what the tenant stores; the admin key may ask
    about any tenant."""
    who = _tenant_of(caller, tenant) or caller.tenant
    day, spent = await ledger.report(who)
    stored = await registry.tenant_storage(who)
    return UsageOut(
        tenant=who,
        day=day,
        requests=spent.requests,
        tokens=spent.tokens,
        cost_usd=spent.cost_micro_usd / 1_000_000,
        tokens_left=await limits.tokens_left(who),
        documents=stored.documents,
        chunks=stored.chunks,
        bytes=stored.bytes,
        max_chunks=settings.tenant_max_chunks,
        max_bytes=settings.tenant_max_bytes,
    )
