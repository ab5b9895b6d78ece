"""Who is calling: the principal a request runs as, derived from its API key (or open mode).

Every route reads its tenant from the principal, asks it for the scope it needs
(`read`, `write`, `admin`) and for each collection it names (`scope_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from service.errors import Forbidden
from service.store.base import Scope

Permission = Literal["read", "write", "admin"]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)
Kind = Literal["open", "root", "key"]

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    """`collections` None: every collection of the tenant. `kind`: `open` (no admin key is
    configured), `root` (the admin key: every tenant) or `key` (an issued API key)."""

    key_id: str
    tenant: str
    scopes: frozenset[str]
    collections: frozenset[str] | None
    kind: Kind

    @property
    def limited(self) -> bool:
        """Per-key limits (rate, streams) apply to issued keys, not to the operator."""
        return self.kind == "key"

    @property
    def owner(self) -> str:
        """Who owns what this caller starts (a resumable run): tenant and key together."""
        return f"{self.tenant}\x1f{self.key_id}"

    def can_read(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def require(self, permission: Permission) -> None:
        if permission in self.scopes:
            return
        if self.kind == "open":
            raise Forbidden(
                f"the {permission} scope is for API keys: set CITELINE_ADMIN_API_KEY to manage "
                "keys (the service runs in open mode)"
            )
        raise Forbidden(f"this API key lacks the {permission!r} scope")

    def scope_of(self, collection: str) -> Scope:
        """The caller's scope in `collection`; 403 when the key may not use it."""
        if not self.can_read(collection):
            raise Forbidden(f"this API key may not use collection {collection!r}")
        return Scope(self.tenant, collection)


OPEN = Principal("open", DEFAULT_TENANT, frozenset({"read", "write"}), None, "open")
ROOT = Principal("admin", DEFAULT_TENANT, frozenset(PERMISSIONS), None, "root")
