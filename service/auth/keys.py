"""API keys: their format, what is stored of them, and the store contract.

A key reads `cl_<id>_<secret>`: the id (16 hex digits) finds the record, the secret (64 hex
digits, 256 random bits) proves it. Only the SHA-256 of the whole key is stored, and it is
compared in constant time; a slow password hash would buy nothing against 256 random bits
(and one digest per request also serves the comparison with the admin key). The secret is
shown once, when the key is made, and never again (not in a list, a log or a repr).

Two stores implement `KeyStore`, next to the catalog they serve: SQLite in the data dir
(embedded mode) and Redis (`CITELINE_QUEUE=arq`), where a revocation is seen by every API
process on its next request. A store that cannot answer raises the catalog's
`RegistryUnavailable` (503).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

_KEY = re.compile(r"^cl_([0-9a-f]{16})_([0-9a-f]{64})$")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    tenant: str
    scopes: tuple[str, ...]
    collections: tuple[str, ...] | None
    created_at: float
    expires_at: float | None
    secret_hash: str = field(repr=False)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def matches(self, digest: str) -> bool:
        """Whether `digest` (a presented key's `hash_secret`) is this key's."""
        return hmac.compare_digest(digest, self.secret_hash)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The id of a well-formed key, else None."""
    m = _KEY.match(token)
    return m.group(1) if m else None


def new_key(
    name: str,
    tenant: str,
    scopes: Sequence[str],
    collections: Sequence[str] | None,
    expires_at: float | None,
) -> tuple[KeyRecord, str]:
    """A new record and the key string (the only time the secret exists in the clear)."""
    key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    key = f"cl_{key_id}_{secret}"
    record = KeyRecord(
        id=key_id,
        name=name,
        tenant=tenant,
        scopes=tuple(dict.fromkeys(scopes)),
        collections=None if collections is None else tuple(sorted(set(collections))),
        created_at=time.time(),
        expires_at=expires_at,
        secret_hash=hash_secret(key),
    )
    return record, key


class KeyStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, record: KeyRecord) -> None: ...

    async def get(self, key_id: str) -> KeyRecord | None:
        """On every request: must be fast (memory, or one Redis round trip)."""
        ...

    async def list(self, tenant: str | None, limit: int) -> list[KeyRecord]:
        """Keys of `tenant` (None: every tenant), oldest first."""
        ...

    async def revoke(self, key_id: str, tenant: str | None) -> bool:
        """Remove the key (of `tenant` only, unless None); False when there was none."""
        ...
