"""The service's own SSE format (PROTOCOLS.md §1 and §5) over answer events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from service.answering import (
    AnswerEvent,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    UsageEvent,
    usage_out,
)
from service.streams.live import LiveResponse, sse_frame

log = logging.getLogger("citeline.sse")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


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
                "spans": [{"n": c.n, "start": c.start, "end": c.end} for c in spans],
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
    try:
        async for event in events:
            name, body = event_payload(event)
            seq += 1
            unnamed = name == "delta" and not named_deltas
            yield sse_frame(_json(body), event=None if unnamed else name, id=str(seq))
    except Exception as exc:
        log.exception("stream.failed")
        seq += 1
        _, body = event_payload(ErrorEvent(f"the answer stream failed: {type(exc).__name__}"))
        yield sse_frame(_json(body), event="error", id=str(seq))
    yield sse_frame("[DONE]")


def sse_response(frames: AsyncIterator[bytes], ping_s: float) -> LiveResponse:
    return LiveResponse(frames, ping_s=ping_s, headers=SSE_HEADERS)
