"""Chat completions through the official `openai` SDK: OpenAI, Azure OpenAI (v1 API), vLLM,
Ollama, llama.cpp, LiteLLM and any gateway that speaks `/v1/chat/completions` with SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

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
)

__all__ = ["OpenAICompatibleLLM", "map_openai_error"]

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

# The SDK retries these itself, so they are transient by its own definition.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


def _server_message(exc: openai.APIStatusError) -> str:
    # The SDK's message is "Error code: N - {whole body}"; the body is the inner error object.
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def map_openai_error(exc: openai.OpenAIError | httpx.HTTPError, model: str) -> LLMError:
    """Translate an SDK or raw transport exception, raised after the SDK's retries."""
    if isinstance(exc, httpx.HTTPError):  # e.g. RemoteProtocolError when a stream is cut
        return LLMUnavailable(f"connection to the LLM server failed: {exc!r}", model=model)
    if isinstance(exc, openai.APITimeoutError):
        return LLMUnavailable(f"request to {model!r} timed out", model=model)
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(f"cannot reach the LLM server: {exc}", model=model)
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


def _to_openai(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


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
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> AsyncIterator[LLMEvent]:
        options: dict[str, Any] = {self._max_tokens_param: max_tokens}
        if self._temperature is not None:
            options["temperature"] = self._temperature
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=[_to_openai(m) for m in messages],
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise map_openai_error(exc, self.model) from exc
        parts: list[str] = []
        usage: Any = None
        finished = False
        # `async with` closes the HTTP response however we leave: the end, an error, or the
        # consumer closing this generator (GeneratorExit) or being cancelled.
        async with response:
            try:
                async for chunk in response:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        finished = finished or choice.finish_reason is not None
                        # Some servers omit `delta` on the finishing chunk.
                        text = getattr(getattr(choice, "delta", None), "content", None)
                        if text:
                            parts.append(text)
                            yield TextDelta(text)
            except (openai.OpenAIError, httpx.HTTPError) as exc:
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

    def _usage(self, reported: Any, messages: Sequence[ChatMessage], parts: list[str]) -> Usage:
        if reported is not None:
            return Usage(
                prompt_tokens=int(reported.prompt_tokens or 0),
                completion_tokens=int(reported.completion_tokens or 0),
                model=self.model,
            )
        return Usage(
            prompt_tokens=estimate_prompt_tokens(messages),
            completion_tokens=count_tokens("".join(parts)),
            model=self.model,
            estimated=True,
        )
