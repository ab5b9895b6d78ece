"""The Vercel AI SDK UI message stream (PROTOCOLS.md §2) over answer events.

Only the v5 chunk subset is emitted (later clients read it too); custom payloads travel as
`data-<name>` parts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from schemas.query import Source
from service.query.events import (
    AnswerEvent,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    UsageEvent,
)
from service.streams.common import NO_BUFFERING, dumps, fields, passage, safe_events, source_id

UI_HEADERS = {**NO_BUFFERING, "x-vercel-ai-ui-message-stream": "v1"}
PROVIDER = "citeline"
TEXT_ID = "t1"

Chunk = dict[str, Any]


def usage_fields(event: UsageEvent) -> dict[str, Any]:
    return {**fields(event), "total_tokens": event.total_tokens}


class UIMessageEncoder:
    """Turns answer events into UI message chunks, tracking the open text part."""

    def __init__(self, message_id: str, extra_metadata: dict[str, Any] | None = None) -> None:
        self.message_id = message_id
        self.extra_metadata = extra_metadata or {}
        self.text_open = False
        self.sources: list[Source] = []
        self.usage: dict[str, Any] | None = None

    def start(self) -> list[Chunk]:
        return [{"type": "start", "messageId": self.message_id}, {"type": "start-step"}]

    def _end_text(self) -> list[Chunk]:
        if not self.text_open:
            return []
        self.text_open = False
        return [{"type": "text-end", "id": TEXT_ID}]

    def encode(self, event: AnswerEvent) -> list[Chunk]:
        match event:
            case SourcesEvent():
                self.sources = list(event.sources)
                return [
                    {
                        "type": "source-document",
                        "sourceId": source_id(s),
                        "mediaType": "text/plain",
                        "title": s.title or s.document_id,
                        **({"filename": s.source} if s.source else {}),
                        "providerMetadata": {PROVIDER: passage(s)},
                    }
                    for s in self.sources
                ]
            case DeltaEvent():
                opening: list[Chunk] = []
                if not self.text_open:
                    self.text_open = True
                    opening = [{"type": "text-start", "id": TEXT_ID}]
                return [*opening, {"type": "text-delta", "id": TEXT_ID, "delta": event.text}]
            case CitationsEvent():
                data = {
                    **fields(event),
                    "sources": [{"n": s.n, "sourceId": source_id(s)} for s in self.sources],
                }
                return [
                    *self._end_text(),
                    {"type": "data-citations", "id": "citations", "data": data},
                ]
            case UsageEvent():
                self.usage = usage_fields(event)
                return []
            case DoneEvent():
                done = {k: v for k, v in fields(event).items() if k != "answer"}  # + new fields
                metadata = {
                    **done,
                    "latency_ms": round(event.latency_ms, 2),
                    "usage": self.usage,
                    **self.extra_metadata,
                }
                return [
                    *self._end_text(),
                    {"type": "finish-step"},
                    {"type": "finish", "finishReason": "stop", "messageMetadata": metadata},
                ]
            case ErrorEvent():
                return [*self._end_text(), {"type": "error", "errorText": event.message}]
        return []  # an event kind this encoder does not know: nothing a v5 client could break on


async def ui_frames(
    events: AsyncIterator[AnswerEvent],
    message_id: str,
    extra_metadata: dict[str, Any] | None = None,
) -> AsyncGenerator[str, None]:
    """The run as JSON chunk strings (each one SSE `data:` payload), without the final [DONE]."""
    encoder = UIMessageEncoder(message_id, extra_metadata)
    for chunk in encoder.start():
        yield dumps(chunk)
    async for event in safe_events(events):
        for chunk in encoder.encode(event):
            yield dumps(chunk)


def ending_frames(message: str) -> list[str]:
    """Closes a stream that a shutdown cut: an error chunk, then `finish`."""
    return [dumps({"type": "error", "errorText": message}), dumps({"type": "finish"})]


def overflow_frames(message: str) -> list[str]:
    """Closes a run cut short (e.g. past the resume buffer's size bound)."""
    return [dumps({"type": "error", "errorText": message})]
