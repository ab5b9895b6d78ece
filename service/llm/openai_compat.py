"""Chat completions through the official `openai` SDK: OpenAI, Azure OpenAI (v1 API), vLLM,
Ollama, llama.cpp, LiteLLM and any gateway that speaks `/v1/chat/completions` with SSE."""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from service.indexing.tokens import count_tokens
from service.llm.base import (
    ChatMessage,
    LLMError,
    LLMEvent,
    LLMRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    Usage,
    estimate_prompt_tokens,
    parse_retry_after,
    root_cause,
    timed_out,
)

__all__ = ["OpenAICompatibleLLM", "map_openai_error"]

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

# The SDK retries these itself, so they are transient by its own definition.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


class _InvalidChunk(ValueError):
    """A stream event that is not a chat completion chunk."""


def _server_message(exc: openai.APIStatusError) -> str:
    # The SDK's message is "Error code: N - {whole body}"; the body is the inner error object.
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def map_openai_error(
    exc: openai.OpenAIError | httpx.HTTPError | _InvalidChunk, model: str
) -> LLMError:
    """Translate an SDK or raw transport exception, raised after the SDK's retries."""
    if isinstance(exc, _InvalidChunk):
        return LLMRejected(f"invalid stream from {model!r}: {exc}", model=model)
    if isinstance(exc, httpx.HTTPError):  # e.g. RemoteProtocolError when a stream is cut
        return LLMUnavailable(f"connection to the LLM server failed: {exc!r}", model=model)
    if isinstance(exc, openai.APITimeoutError) and timed_out(exc):
        return LLMUnavailable(f"request to {model!r} timed out", model=model)
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(f"cannot reach the LLM server: {root_cause(exc)}", model=model)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"{model!r} failed with HTTP {status}: {_server_message(exc)}"
        # OpenAI reports an exhausted quota as a 429, but waiting does not refill it.
        if status == 429 and exc.code == "insufficient_quota":
            return LLMRejected(message, model=model, status_code=status)
        if status in _TRANSIENT_STATUSES or status >= 500:
            return LLMUnavailable(
                message,
                model=model,
                status_code=status,
                retry_after=parse_retry_after(exc.response.headers),
            )
        # A 404 on chat completions is an unknown model (OpenAI, vLLM, Ollama) or a wrong
        # base URL: either way another endpoint or model may work.
        return LLMRejected(message, model=model, status_code=status, model_not_found=status == 404)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMRejected(f"invalid response from {model!r}: {exc}", model=model)
    # APIError without a status: an `{"error": ...}` event inside the stream.
    return LLMUnavailable(f"{model!r} reported an error: {exc}", model=model)


@dataclass(frozen=True, slots=True)
class _Chunk:
    texts: list[str]
    finished: bool
    usage: tuple[int, int] | None  # prompt, completion


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _parse_chunk(payload: str, request: httpx.Request) -> _Chunk:
    """One `chat.completion.chunk`, or APIError for an `{"error": ...}` event."""
    try:
        chunk = json.loads(payload)
    except ValueError as exc:
        raise _InvalidChunk(f"a stream event is not JSON: {payload[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise _InvalidChunk(f"a stream event is not an object: {payload[:200]!r}")
    if error := chunk.get("error"):
        message = error.get("message") if isinstance(error, dict) else None
        raise openai.APIError(
            message if isinstance(message, str) else "an error occurred during streaming",
            request,
            body=error,
        )
    texts: list[str] = []
    finished = False
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise _InvalidChunk(f"`choices` is not a list: {payload[:200]!r}")
    for choice in choices:
        if not isinstance(choice, dict):
            raise _InvalidChunk(f"a choice is not an object: {payload[:200]!r}")
        finished = finished or choice.get("finish_reason") is not None
        delta = choice.get("delta")  # some servers omit it on the finishing chunk
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(text, str) and text:
            texts.append(text)
    usage = chunk.get("usage")
    reported = None
    if isinstance(usage, dict):
        reported = (_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
    return _Chunk(texts, finished, reported)


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


async def _chunks(response: httpx.Response) -> AsyncGenerator[_Chunk]:
    """The chunks of a streamed chat completion until `[DONE]`, those of one network read
    merged into one: a client keeping up gets every token as it comes, and one falling behind
    (a busy event loop) catches up in fewer, larger deltas instead of queueing."""
    request = response.request
    splitter = _EventSplitter()
    async for raw in response.aiter_bytes():
        parsed: list[_Chunk] = []
        done = False
        failure: Exception | None = None
        try:
            for payload in splitter.feed(raw):
                if payload.startswith("[DONE]"):
                    done = True
                    break
                parsed.append(_parse_chunk(payload, request))
        except (openai.APIError, _InvalidChunk) as exc:
            failure = exc
        if parsed:  # text that came before an error event in the same read goes out first
            yield _merge(parsed)
        if failure is not None:
            raise failure
        if done:
            return


def _merge(chunks: list[_Chunk]) -> _Chunk:
    if len(chunks) == 1:
        return chunks[0]
    text = "".join(t for c in chunks for t in c.texts)
    usage = next((c.usage for c in reversed(chunks) if c.usage is not None), None)
    return _Chunk([text] if text else [], any(c.finished for c in chunks), usage)


class OpenAICompatibleLLM:
    """LLM over any OpenAI-compatible chat completions endpoint, streamed.

    `timeout` bounds connecting, each read (so also the gap between two chunks) and each
    write of one attempt; the SDK retries 408/409/429/5xx and connection errors up to
    `max_retries` times before the stream starts, honouring Retry-After, and never after.
    Usage comes from `stream_options.include_usage`; servers that ignore it (older Ollama,
    some gateways) get their usage estimated with tiktoken cl100k_base, marked `estimated`.
    Newer OpenAI reasoning models need `max_tokens_param="max_completion_tokens"`.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        context_window: int = 8192,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        max_tokens_param: MaxTokensParam = "max_tokens",
        temperature: float | None = None,
    ) -> None:
        self.model = model
        self.context_window = context_window
        self._max_tokens_param = max_tokens_param
        self._temperature = temperature
        # Local servers (Ollama, llama.cpp, vLLM) take no key, but the SDK insists on one.
        if api_key is None and base_url is not None:
            api_key = "unused"
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            max_retries=max_retries,
            # aiohttp's C HTTP parser, which the SDK supports as its transport: a third less
            # CPU per streamed answer than httpx's pure-Python one (measured at 50 streams).
            http_client=DefaultAioHttpClient(),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> AsyncIterator[LLMEvent]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            self._max_tokens_param: max_tokens,
        }
        if self._temperature is not None:
            body["temperature"] = self._temperature
        parts: list[str] = []
        usage: tuple[int, int] | None = None
        finished = False
        # The SDK's own request path (`post`, its documented way to send any body): it sends,
        # retries before the stream starts and raises mapped status errors. The typed
        # `chat.completions.create` would first walk the messages against every message type,
        # and parse every chunk into a pydantic model: together half of this service's CPU per
        # streamed answer at 50 streams. The body is the same; the chunks are read as JSON.
        try:
            response = await self._client.post(
                "/chat/completions", cast_to=httpx.Response, body=body, stream=True
            )
            # Closed however we leave: the end, an error, or the consumer closing this
            # generator (GeneratorExit) or being cancelled.
            try:
                async with aclosing(_chunks(response)) as chunks:
                    async for chunk in chunks:
                        usage = chunk.usage or usage
                        finished = finished or chunk.finished
                        for text in chunk.texts:
                            parts.append(text)
                            yield TextDelta(text)
            finally:
                await response.aclose()
        except (openai.OpenAIError, httpx.HTTPError, _InvalidChunk) as exc:
            if parts:
                raise LLMStreamBroken(
                    f"the stream from {self.model!r} broke after {len(parts)} deltas: {exc!r}",
                    model=self.model,
                ) from exc
            raise map_openai_error(exc, self.model) from exc
        if not finished:
            # The body ended cleanly but without finish_reason or [DONE]: a cut connection.
            message = f"the stream from {self.model!r} ended without finishing"
            if parts:
                raise LLMStreamBroken(message, model=self.model)
            raise LLMUnavailable(message, model=self.model)
        yield self._usage(usage, messages, parts)

    def _usage(
        self, reported: tuple[int, int] | None, messages: Sequence[ChatMessage], parts: list[str]
    ) -> Usage:
        if reported is not None:
            return Usage(prompt_tokens=reported[0], completion_tokens=reported[1], model=self.model)
        return Usage(
            prompt_tokens=estimate_prompt_tokens(messages),
            completion_tokens=count_tokens("".join(parts)),
            model=self.model,
            estimated=True,
        )
