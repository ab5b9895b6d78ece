"""File uploads as documents: the type decided by content, every size limit checked up front.

An upload is refused at once (415 naming the supported types, 413 over a limit) when its bytes
show it: the format (magic bytes), its per-type size, a DOCX/PPTX that unpacks past the cap or
a deck over the slide limit. What only parsing can tell (a PDF's page count, a file that hangs
or crashes the parser) fails the document's job instead, with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from schemas.documents import FileOptions
from service.config import Settings
from service.errors import PayloadTooLarge, UnsupportedMediaType
from service.parsing.detect import TooLarge, Unsupported, detect
from service.parsing.model import MEDIA_TYPES, Format, Limits

_LIMIT_NAME: dict[Format, str] = {
    "pdf": "pdf", "docx": "docx", "pptx": "pptx", "html": "html", "markdown": "text",
    "text": "text",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Upload:
    """One file of a request, as received."""

    data: bytes
    filename: str | None
    declared_type: str | None


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """An upload whose type and sizes passed: what the catalog records about it."""

    data: bytes
    format: Format
    media_type: str
    filename: str | None
    sha256: str


def file_limits(settings: Settings) -> Limits:
    return Limits(
        max_pages=settings.max_file_pages,
        max_chars=settings.max_document_chars,
        max_uncompressed_bytes=settings.max_file_uncompressed_bytes,
    )


def check_file(settings: Settings, upload: Upload) -> CheckedFile:
    name = upload.filename or "the file"
    if not upload.data:
        raise UnsupportedMediaType(f"{name} is empty")
    try:
        found = detect(upload.data, upload.filename, upload.declared_type, file_limits(settings))
    except Unsupported as exc:
        raise UnsupportedMediaType(f"{name}: {exc}") from None
    except TooLarge as exc:
        raise PayloadTooLarge(f"{name}: {exc}") from None
    kind = _LIMIT_NAME[found.format]
    limit: int = getattr(settings, f"max_file_bytes_{kind}")
    if len(upload.data) > limit:
        raise PayloadTooLarge(
            f"{name} is {len(upload.data)} bytes; the limit for {found.format.upper()} files is "
            f"{limit} (CITELINE_MAX_FILE_BYTES_{kind.upper()})"
        )
    filename = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1][:255] or None
    digest = hashlib.sha256(upload.data).hexdigest()
    return CheckedFile(upload.data, found.format, MEDIA_TYPES[found.format], filename, digest)


def file_options(fields: dict[str, str]) -> FileOptions:
    """The form's other fields, `metadata` and `chunking` being JSON strings."""
    values: dict[str, Any] = dict(fields)
    for key in ("metadata", "chunking"):
        if key in values:
            # Not JSON: left as a string, which validation reports as not an object.
            with contextlib.suppress(ValueError):
                values[key] = json.loads(values[key])
    try:
        return FileOptions.model_validate(values)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
