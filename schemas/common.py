"""Bounded building blocks shared by the request models."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-.:]{0,127}$"
COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"

DocumentId = Annotated[
    str, Field(pattern=ID_PATTERN, description="1–128 chars: letters, digits, _-.:")
]
CollectionName = Annotated[str, Field(pattern=COLLECTION_PATTERN)]
Title = Annotated[str, Field(max_length=1024)]
# Only web links: a `javascript:` or `file:` source would be a link a frontend renders.
SOURCE_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+[^\s]*$"
SourceRef = Annotated[
    str, Field(max_length=2048, pattern=SOURCE_PATTERN, description="an http(s) URL")
]

MAX_METADATA_KEYS = 64
MAX_METADATA_JSON_CHARS = 16_384


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:

    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata has more than {MAX_METADATA_KEYS} keys")
    for key in value:
        if not (1 <= len(key) <= 128):
            raise ValueError("metadata keys must be 1–128 characters")
    if len(json.dumps(value, ensure_ascii=False)) > MAX_METADATA_JSON_CHARS:
        raise ValueError(f"metadata is larger than {MAX_METADATA_JSON_CHARS} characters as JSON")
    return value


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]  # JSON has no NaN or Infinity
MetadataValue = str | int | FiniteFloat | bool | None | list[str | int | FiniteFloat | bool]
Metadata = Annotated[dict[str, MetadataValue], AfterValidator(_check_metadata)]
