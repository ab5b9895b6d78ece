"""The service's own SSE format (PROTOCOLS.md §1 and §5) over answer events."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from service.query.events import (
    AnswerEvent,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    UsageEvent,
    usage_out,
)
from service.streams.common import NO_BUFFERING, dumps, safe_events
from service.streams.live import SHUTDOWN_MESSAGE, LiveResponse, sse_frame

# OpenAPI: what a streaming route's 200 is; the schema is that of one event.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string"},
        "data": {"type": "string", "description": "JSON, or [DONE] as the last event"},
    },
    "required": ["data"],
}
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with streaming a text/event-stream ending in `data: [DONE]`",
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    }
}


def event_payload(event: AnswerEvent) -> tuple[str, dict[str, Any]]:
    """The SSE event name and JSON body of one answer event."""
    match event:
        case SourcesEvent(sources):
            return "sources", {"sources": [s.model_dump(mode="json") for s in sources]}
        case DeltaEvent(text):
            return "delta", {"text": text}
        case CitationsEvent(cited, spans):
            return "citations", {
                "cited": cited,
                "spans": [dataclasses.asdict(c) for c in spans],
            }
        case UsageEvent():
            return "usage", usage_out(event).model_dump()
        case DoneEvent():
            return "done", {
                "answer": event.answer,
                "model": event.model,
                "latency_ms": round(event.latency_ms, 2),
                "tokens_used": event.tokens_used,
            }
        case ErrorEvent(message, status, retry_after):
            return "error", {"message": message, "status": status, "retry_after": retry_after}
    raise TypeError(f"unknown event {event!r}")


async def encode_sse(
    events: AsyncIterator[AnswerEvent], *, named_deltas: bool = True
) -> AsyncIterator[bytes]:
    """Named events with ids; deltas unnamed when `named_deltas` is false (for `onmessage`)."""
    seq = 0
    async for event in safe_events(events):
        name, body = event_payload(event)
        seq += 1
        unnamed = name == "delta" and not named_deltas
        yield sse_frame(dumps(body), event=None if unnamed else name, id=str(seq))
    yield sse_frame("[DONE]")


def sse_ending(message: str = SHUTDOWN_MESSAGE) -> bytes:
    """An `error` event (503, retry after a second), then `data: [DONE]`."""
    body = {"message": message, "status": 503, "retry_after": 1}
    return sse_frame(dumps(body), event="error") + sse_frame("[DONE]")


def sse_response(
    frames: AsyncIterator[bytes],
    ping_s: float,
    on_close: Callable[[], None] | None = None,
    *,
    wire_format: str = "sse",
    ending: bytes = b"",
) -> LiveResponse:
    """A service SSE stream; a shutdown ends it with `ending` (default: `sse_ending()`);
    `on_close` when it ends, however it ends."""
    return LiveResponse(
        frames,
        ping_s=ping_s,
        headers=NO_BUFFERING,
        wire_format=wire_format,
        ending=ending or sse_ending(),
        on_close=on_close,
    )
