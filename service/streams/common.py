"""What every stream encoder shares: compact JSON, passages, safe event iteration, headers."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from schemas.query import Source
from service.errors import ServiceError, Unavailable
from service.query.events import AnswerEvent, ErrorEvent

log = logging.getLogger("citeline.streams")

# Streams must reach the client as they are written: no caching, no proxy buffering (nginx).
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def fields(event: Any) -> dict[str, Any]:
    """All of a dataclass event's fields, including ones added after an encoder was written."""
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return dataclasses.asdict(event)
    return {}


def source_id(source: Source) -> str:
    return f"{source.document_id}#{source.chunk_id}"


def passage(source: Source) -> dict[str, Any]:
    """What a frontend needs to show and check a cited passage."""
    return {
        "n": source.n,
        "document_id": source.document_id,
        "chunk_id": source.chunk_id,
        "title": source.title,
        "source": source.source,
        "text": source.text,
        "start": source.start,
        "end": source.end,
        "start_utf16": source.start_utf16,
        "end_utf16": source.end_utf16,
        "score": source.score,
        "metadata": source.metadata,
        "page": source.page,
        "page_end": source.page_end,
        "page_label": source.page_label,
        "section": source.section,
    }


async def safe_events(events: AsyncIterator[AnswerEvent]) -> AsyncIterator[AnswerEvent]:
    """The run's events; a failure inside it becomes one final ErrorEvent, so a stream always
    ends in its format's own error shape."""
    try:
        async for event in events:
            yield event
    except Exception as exc:  # the stream has started: report in-band, never drop the socket
        log.exception("stream.failed")
        yield ErrorEvent(f"the answer stream failed: {type(exc).__name__}")


def error_for(event: ErrorEvent) -> ServiceError:
    """The problem response for an answer run that failed before it streamed (its status:
    502, 503 with Retry-After, 504, or 413 for a question too long for the model)."""
    if event.retry_after is not None:
        return Unavailable(event.message, retry_after=event.retry_after)
    return ServiceError(event.message, status=event.status)
