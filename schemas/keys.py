"""API keys (`/v1/keys`) and usage (`/v1/usage`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.common import COLLECTION_PATTERN, CollectionName

TENANT_PATTERN = COLLECTION_PATTERN  # letters, digits, _ and -; 1-64 characters
Tenant = Annotated[
    str, Field(pattern=TENANT_PATTERN, description="1–64 chars: letters, digits, _-")
]
KeyScope = Literal["read", "write", "admin"]
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
MAX_KEY_COLLECTIONS = 1000


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    tenant: Tenant
    scopes: Annotated[list[KeyScope], Field(min_length=1, max_length=3)]
    collections: (
        Annotated[list[CollectionName], Field(min_length=1, max_length=MAX_KEY_COLLECTIONS)] | None
    ) = Field(
        default=None, description="the collections the key may use; null: all of the tenant's"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="with a time zone; null: never"
    )


class KeyOut(BaseModel):
    id: str
    name: str
    tenant: str
    scopes: list[KeyScope]
    collections: list[str] | None
    created_at: datetime
    expires_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="`cl_<id>_<secret>`: shown this once, never again")


class KeyList(BaseModel):
    keys: list[KeyOut]


class KeyRevoked(BaseModel):
    id: str
    revoked: Literal[True] = True


class UsageOut(BaseModel):
    tenant: str
    day: str = Field(description="the UTC day `requests`, `tokens` and `cost_usd` count")
    requests: int
    tokens: int = Field(description="LLM and embedding tokens")
    cost_usd: float
    tokens_left: int | None = Field(description="in the current CITELINE_TENANT_TOKEN_LIMIT window")
    documents: int
    chunks: int
    bytes: int = Field(description="UTF-8 bytes of the documents' text")
    max_chunks: int | None
    max_bytes: int | None
