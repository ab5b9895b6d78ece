"""The check on every request: which principal an `Authorization: Bearer` or `X-API-Key`
header names, or 401.

Open mode (no CITELINE_ADMIN_API_KEY) answers the open principal without reading any header.
The admin key is compared in constant time (as SHA-256 digests, so its length leaks nothing
either) and acts as the operator: every tenant, every scope.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from service.auth.keys import KeyRecord, KeyStore, hash_secret, key_id_of
from service.auth.principal import OPEN, ROOT, Principal
from service.errors import Unauthorized

log = logging.getLogger("citeline.auth")

_BEARER = "bearer "


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: `Authorization: Bearer <key>`, else `X-API-Key: <key>`."""
    auth = headers.get("authorization")
    if auth is not None and auth[:7].lower() == _BEARER:
        return auth[7:].strip() or None
    key = (headers.get("x-api-key") or "").strip()
    return key or None


def principal_of(record: KeyRecord) -> Principal:
    collections = None if record.collections is None else frozenset(record.collections)
    return Principal(record.id, record.tenant, frozenset(record.scopes), collections, "key")


class Authenticator:
    def __init__(self, admin_key: str | None, store: KeyStore) -> None:
        self._admin_digest = hash_secret(admin_key) if admin_key is not None else None
        self.store = store
        # The principal of each record seen, so a request builds no sets (records are frozen:
        # a revoked or changed key is a new lookup that misses this).
        self._principals: dict[KeyRecord, Principal] = {}

    @property
    def open_mode(self) -> bool:
        return self._admin_digest is None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if self._admin_digest is None:
            return OPEN
        token = presented_key(headers)
        if token is None:
            raise Unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key`"
            )
        digest = hash_secret(token)
        if hmac.compare_digest(digest, self._admin_digest):
            return ROOT
        key_id = key_id_of(token)
        record = await self.store.get(key_id) if key_id is not None else None
        if record is None or not record.matches(digest):
            _refused(key_id, "invalid")
            raise Unauthorized("the API key is not valid (unknown, malformed or revoked)")
        if record.expired():
            _refused(key_id, "expired")
            raise Unauthorized("the API key has expired")
        principal = self._principals.get(record)
        if principal is None:
            if len(self._principals) > 10_000:
                self._principals.clear()
            principal = self._principals[record] = principal_of(record)
        return principal


def _refused(key_id: str | None, reason: str) -> None:
    """Logged with the key's id when it has one (an id is no secret), never the key itself."""
    log.info("auth.refused", extra={"presented_key_id": key_id or "", "reason": reason})
