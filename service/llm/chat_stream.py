"""Reading a streamed chat completion: SSE events to chunks, without the SDK's models.

The SDK would parse each chunk into a pydantic object; at tens of thousands of chunks a second
that was the largest cost of a streamed answer. These read the same events as plain JSON,
as strictly: an event of the wrong shape is an error, not something to skip.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx
import openai

__all__ = ["Chunk", "InvalidChunk", "read_chunks"]


class InvalidChunk(ValueError):
    """A stream event that is not a chat completion chunk."""


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str  # "" when the chunk carries none
    finished: bool
    usage: tuple[int, int] | None  # prompt, completion


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _parse_chunk(payload: str, request: httpx.Request) -> Chunk:
    """One `chat.completion.chunk`, or APIError for an `{"error": ...}` event."""
    try:
        chunk = json.loads(payload)
    except ValueError as exc:
        raise InvalidChunk(f"a stream event is not JSON: {payload[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise InvalidChunk(f"a stream event is not an object: {payload[:200]!r}")
    if error := chunk.get("error"):
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(
            message if isinstance(message, str) else "an error occurred during streaming",
            request,
            body=error,
        )
    texts: list[str] = []  # one per choice; citeline asks for one
    finished = False
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise InvalidChunk(f"`choices` is not a list: {payload[:200]!r}")
    for choice in choices:
        if not isinstance(choice, dict):
            raise InvalidChunk(f"a choice is not an object: {payload[:200]!r}")
        finished = finished or choice.get("finish_reason") is not None
        delta = choice.get("delta")  # some servers omit it on the finishing chunk
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(text, str) and text:
            texts.append(text)
    usage = chunk.get("usage")
    reported = None
    if isinstance(usage, dict):
        reported = (_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
    return Chunk("".join(texts), finished, reported)


class _EventSplitter:
    """The `data` of each complete SSE event in a byte stream (lines end in LF, CRLF or CR;
    `data` lines are joined with LF; comments, `event`, `id` and `retry` are ignored, as the
    SDK's own decoder ignores them for chat completions)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""  # the start of a line whose end has not come yet
        self._after_cr = False  # the last read ended in CR: an LF opening the next one is its pair
        self._data: list[str] = []

    def feed(self, raw: bytes) -> list[str]:
        text = self._decoder.decode(raw)
        if not text:  # the read ended inside a UTF-8 sequence
            return []
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        text = self._pending + text
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._pending = text.split("\n")
        events: list[str] = []
        for line in lines:
            if line.startswith("data:"):
                self._data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif not line and self._data:
                events.append("\n".join(self._data))
                self._data.clear()
        return events


async def read_chunks(response: httpx.Response) -> AsyncGenerator[Chunk]:
    """The chunks of a streamed chat completion until `[DONE]`, those of one network read
    merged into one: a client keeping up gets every token as it comes, and one falling behind
    (a busy event loop) catches up in fewer, larger deltas instead of queueing."""
    request = response.request
    splitter = _EventSplitter()
    async for raw in response.aiter_bytes():
        parsed: list[Chunk] = []
        done = False
        failure: Exception | None = None
        try:
            for payload in splitter.feed(raw):
                if payload.startswith("[DONE]"):
                    done = True
                    break
                parsed.append(_parse_chunk(payload, request))
        except (openai.APIError, InvalidChunk) as exc:
            failure = exc
        if parsed:  # text that came before an error event in the same read goes out first
            yield _merge(parsed)
        if failure is not None:
            raise failure
        if done:
            return


def _merge(chunks: list[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    text = "".join(c.text for c in chunks)
    usage = next((c.usage for c in reversed(chunks) if c.usage is not None), None)
    return Chunk(text, any(c.finished for c in chunks), usage)
