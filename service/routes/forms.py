"""Request bodies the routes read themselves: JSON (validated off the event loop) or
multipart/form-data (parsed off the event loop, bounded in parts and field sizes)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import BadRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class Form:
    fields: dict[str, str]
    files: list[Part]


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def json_body(request: Request, model: type[M]) -> M:
    """The body validated as `model` in a worker thread: parsing a few MB of JSON on the event
    loop would stall every other request for tens of milliseconds. Whatever its declared type
    (curl -d says form-urlencoded), a body that is not multipart is read as JSON, as before."""
    raw = await request.body()
    try:
        return await asyncio.to_thread(model.model_validate_json, raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


async def form_body(
    request: Request, *, max_files: int, max_fields: int, max_field_bytes: int
) -> Form:
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary")
    raw = await request.body()
    return await asyncio.to_thread(_parse, boundary, raw, max_files, max_fields, max_field_bytes)


def _check_counts(parts: list[Part], max_files: int, max_fields: int) -> None:
    files = sum(p.filename is not None for p in parts)
    if files > max_files:
        raise PayloadTooLarge(f"more than {max_files} files in one request")
    if len(parts) - files > max_fields:
        raise PayloadTooLarge(f"more than {max_fields} form fields (CITELINE_MAX_FORM_FIELDS)")


def _parse(boundary: bytes, raw: bytes, max_files: int, max_fields: int, max_bytes: int) -> Form:
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    name: list[bytes] = [b"", b""]  # header field, header value being read

    def header_field(data: bytes, start: int, end: int) -> None:
        name[0] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        name[1] += data[start:end]

    def header_end() -> None:
        headers[bytes(name[0]).lower()] = bytes(name[1])
        name[0], name[1] = b"", b""

    def headers_finished() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        filename = disposition.get(b"filename")
        content_type = headers.get(b"content-type")
        parts.append(
            Part(
                disposition.get(b"name", b"").decode("utf-8", "replace"),
                filename.decode("utf-8", "replace") if filename is not None else None,
                content_type.decode("latin-1") if content_type else None,
            )
        )
        headers.clear()
        _check_counts(parts, max_files, max_fields)

    def part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part.data += data[start:end]
        if part.filename is None and len(part.data) > max_bytes:
            raise PayloadTooLarge(
                f"form field {part.name!r} is longer than {max_bytes} bytes "
                "(CITELINE_MAX_FORM_FIELD_BYTES)"
            )

    callbacks: Any = {
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
        "on_headers_finished": headers_finished,
        "on_part_data": part_data,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(raw)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from None
    return _form(parts)


def _form(parts: list[Part]) -> Form:
    fields: dict[str, str] = {}
    for p in parts:
        if p.filename is None:
            if p.name in fields:
                raise BadRequest(f"form field {p.name!r} is given twice")
            fields[p.name] = p.data.decode("utf-8", "replace")
    return Form(fields, [p for p in parts if p.filename is not None])
