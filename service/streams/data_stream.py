"""The AI SDK v4 data stream (PROTOCOLS.md §3): one `CODE:JSON\\n` line per part, not SSE.

Retrieval maps onto a tool call: `9:` carries the query, `a:` the retrieved sources; each source
is also an `h:` part, text is `0:`, the citation check an `8:` annotation, errors `3:`, and `d:`
with the usage is always the last line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from service.streams.ui_message import PROVIDER

DATA_HEADERS = {**NO_BUFFERING, "x-vercel-ai-data-stream": "v1"}
DATA_MEDIA_TYPE = "text/plain; charset=utf-8"
TOOL_NAME = "retrieve"
TOOL_CALL_ID = "retrieval-1"
# An empty data part: valid in the format, a no-op for clients, and it keeps proxies from
# closing a silent stream (a blank line or a comment would not be a valid part).
HEARTBEAT = b"2:[]\n"


def part(code: str, value: Any) -> str:
    return f"{code}:{dumps(value)}\n"


def source_url(source: Source) -> str:
    return source.source or f"citeline://documents/{source_id(source)}"


class DataStreamEncoder:
    def __init__(self, message_id: str, query: str, max_results: int | None) -> None:
        self.message_id = message_id
        self.args = {"query": query, "max_results": max_results}
        self.usage = {"promptTokens": 0, "completionTokens": 0}
        self.ended = False

    def start(self) -> list[str]:
        call = {"toolCallId": TOOL_CALL_ID, "toolName": TOOL_NAME, "args": self.args}
        return [part("f", {"messageId": self.message_id}), part("9", call)]

    def _finish(self, reason: str) -> list[str]:
        self.ended = True
        step = {"finishReason": reason, "usage": self.usage, "isContinued": False}
        return [part("e", step), part("d", {"finishReason": reason, "usage": self.usage})]

    def encode(self, event: AnswerEvent) -> list[str]:
        if self.ended:
            return []
        match event:
            case SourcesEvent():
                result = {"sources": [passage(s) for s in event.sources]}
                return [
                    part("a", {"toolCallId": TOOL_CALL_ID, "result": result}),
                    *(
                        part(
                            "h",
                            {
                                "sourceType": "url",
                                "id": source_id(s),
                                "url": source_url(s),
                                "title": s.title or s.document_id,
                                "providerMetadata": {PROVIDER: passage(s)},
                            },
                        )
                        for s in event.sources
                    ),
                ]
            case DeltaEvent():
                return [part("0", event.text)]
            case CitationsEvent():
                return [part("8", [{"type": "citations", **fields(event)}])]
            case UsageEvent():
                self.usage = {
                    "promptTokens": event.prompt_tokens,
                    "completionTokens": event.completion_tokens,
                }
                return []
            case DoneEvent():
                return self._finish("stop")
            case ErrorEvent():
                return [part("3", event.message), *self._finish("error")]
        return []


def ending_lines(message: str) -> bytes:
    """Closes a stream that a shutdown cut: `3:` with the reason, then `e:` and `d:`."""
    encoder = DataStreamEncoder("", "", None)
    return "".join(encoder.encode(ErrorEvent(message, 503))).encode()


async def data_lines(
    events: AsyncIterator[AnswerEvent], message_id: str, query: str, max_results: int | None
) -> AsyncIterator[bytes]:
    encoder = DataStreamEncoder(message_id, query, max_results)
    for line in encoder.start():
        yield line.encode()
    async for event in safe_events(events):
        for line in encoder.encode(event):
            yield line.encode()
    if not encoder.ended:  # the run ended without done: still close with `d:`
        for line in encoder.encode(ErrorEvent("the answer ended without a result")):
            yield line.encode()
