"""OpenAI chat completions (PROTOCOLS.md §4): `chat.completion` objects and streamed chunks.

Citations travel in an extra `citations` field (on the message, or on the chunk that carries
`finish_reason`) so plain clients still work: every retrieved source, numbered as the `[n]`
markers in the text, with `cited` telling whether the answer used it. `citation_spans` beside it
places each marker in the content (`start`/`end` in code points, `start_utf16`/`end_utf16` in
JavaScript's UTF-16 units).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from schemas.query import Source
from service.errors import ServiceError
from service.query.events import (
    AnswerEvent,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    UsageEvent,
)
from service.streams.common import dumps, error_for, fields, passage, safe_events

Chunk = dict[str, Any]


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def citations(sources: list[Source], cited: list[int]) -> list[dict[str, Any]]:
    chosen = set(cited)
    return [{**passage(s), "cited": s.n in chosen} for s in sources]


def openai_usage(usage: UsageEvent | None) -> dict[str, Any]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    extra = {
        k: v for k, v in fields(usage).items() if k not in ("prompt_tokens", "completion_tokens")
    }
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        **({"citeline": extra} if extra else {}),
    }


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


class OpenAIChunkEncoder:
    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.sources: list[Source] = []
        self.cited: list[int] = []
        self.spans: list[dict[str, Any]] = []
        self.usage: UsageEvent | None = None

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> Chunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        out: Chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            **extra,
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def start(self) -> list[Chunk]:
        return [self.chunk({"role": "assistant", "content": ""})]

    def encode(self, event: AnswerEvent) -> list[Chunk]:
        match event:
            case SourcesEvent():
                self.sources = list(event.sources)
            case DeltaEvent():
                return [self.chunk({"content": event.text})]
            case CitationsEvent():
                self.cited = list(event.cited)
                self.spans = [dataclasses.asdict(c) for c in event.spans]
            case UsageEvent():
                self.usage = event
            case DoneEvent():
                last = self.chunk(
                    {},
                    "stop",
                    citations=citations(self.sources, self.cited),
                    citation_spans=self.spans,
                )
                if not self.include_usage:
                    return [last]
                usage_chunk = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": openai_usage(self.usage),
                }
                return [last, usage_chunk]
            case ErrorEvent():
                return [error_body(event.message)]
        return []


def ending_chunks(message: str) -> list[str]:
    """Closes a streamed completion that a shutdown cut: an error chunk (then `[DONE]`)."""
    return [dumps(error_body(message))]


async def openai_frames(
    events: AsyncIterator[AnswerEvent], model: str, include_usage: bool
) -> AsyncIterator[str]:
    """The SSE `data:` payloads of a streamed completion, without the final [DONE]."""
    encoder = OpenAIChunkEncoder(model, include_usage)
    for chunk in encoder.start():
        yield dumps(chunk)
    async for event in safe_events(events):
        for chunk in encoder.encode(event):
            yield dumps(chunk)


async def completion(events: AsyncIterator[AnswerEvent], model: str) -> dict[str, Any]:
    """A whole `chat.completion` object; an ErrorEvent raises (a 5xx problem response)."""
    encoder = OpenAIChunkEncoder(model, include_usage=True)
    async for event in events:
        if isinstance(event, ErrorEvent):
            raise error_for(event)  # upstream auth failures are 502 here as on /v1/query
        encoder.encode(event)
        if isinstance(event, DoneEvent):
            message = {
                "role": "assistant",
                "content": event.answer,
                "refusal": None,
                "citations": citations(encoder.sources, encoder.cited),
                "citation_spans": encoder.spans,
            }
            return {
                "id": encoder.id,
                "object": "chat.completion",
                "created": encoder.created,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
                ],
                "usage": openai_usage(encoder.usage),
            }
    raise ServiceError("the answer ended without a result")
