"""Chat completions through the official `openai` SDK: OpenAI, Azure OpenAI (v1 API), vLLM,
Ollama, llama.cpp, LiteLLM and any gateway that speaks `/v1/chat/completions` with SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, Literal

import httpx
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

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
)
from service.llm.chat_stream import InvalidChunk, read_chunks
from service.tokens import count_tokens
from service.upstream import classify_openai_error

__all__ = ["OpenAICompatibleLLM", "map_openai_error"]

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


def map_openai_error(
    exc: openai.OpenAIError | httpx.HTTPError | InvalidChunk, model: str
) -> LLMError:
    """Translate an SDK or raw transport exception, raised after the SDK's retries."""
    if isinstance(exc, InvalidChunk):
        return LLMRejected(f"invalid stream from {model!r}", model=model, detail=str(exc))
    if isinstance(exc, httpx.HTTPError):  # e.g. RemoteProtocolError when a stream is cut
        return LLMUnavailable(
            f"connection to the LLM server failed ({type(exc).__name__})",
            model=model,
            detail=repr(exc),
        )
    failure = classify_openai_error(exc, f"request to {model!r}", "the LLM server")
    if failure.transient:
        return LLMUnavailable(
            failure.message,
            model=model,
            status_code=failure.status,
            retry_after=failure.retry_after,
            detail=failure.detail,
        )
    # A 404 on chat completions is an unknown model (OpenAI, vLLM, Ollama) or a wrong base
    # URL: either way another endpoint or model may work.
    return LLMRejected(
        failure.message,
        model=model,
        status_code=failure.status,
        model_not_found=failure.not_found,
        detail=failure.detail,
    )


class OpenAICompatibleLLM:
    """LLM over any OpenAI-compatible chat completions endpoint, streamed.

    `timeout` bounds connecting, each read (so also the gap between two chunks) and each
    write of one attempt; the SDK retries 408/409/429/5xx and connection errors up to
    `max_retries` times before the stream starts, honouring Retry-After, and never after.
    Usage comes from `stream_options.include_usage`; servers that ignore it (older Ollama,
    some gateways) get their usage estimated with tiktoken cl100k_base, marked `estimated`.
    Newer OpenAI reasoning models need `max_tokens_param="max_completion_tokens"`.
    """

    provider = "openai"  # for metrics and spans

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
                async with aclosing(read_chunks(response)) as chunks:
                    async for chunk in chunks:
                        usage = chunk.usage or usage
                        finished = finished or chunk.finished
                        if chunk.text:
                            parts.append(chunk.text)
                            yield TextDelta(chunk.text)
            finally:
                await response.aclose()
        except (openai.OpenAIError, httpx.HTTPError, InvalidChunk) as exc:
            if parts:
                raise LLMStreamBroken(
                    f"the stream from {self.model!r} broke after {len(parts)} deltas",
                    model=self.model,
                    detail=repr(exc),
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
