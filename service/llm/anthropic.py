"""Claude through the `anthropic` SDK (the optional extra: `pip install 'citeline[anthropic]'`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from service.llm.base import (
    ChatMessage,
    LLMError,
    LLMEvent,
    LLMRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    Usage,
)
from service.upstream import is_transient_status, parse_retry_after

__all__ = ["AnthropicLLM", "StreamState", "map_anthropic_error", "map_event"]

MISSING_EXTRA = (
    "CITELINE_LLM_PROVIDER=anthropic needs the `anthropic` package: "
    "pip install 'citeline[anthropic]'"
)


def _transport_errors() -> tuple[type[Exception], ...]:
    # anthropic >= 2 runs on `httpx2`, older releases on `httpx`: a cut stream raises either.
    errors: list[type[Exception]] = [httpx.HTTPError]
    try:
        import httpx2

        errors.append(httpx2.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


@dataclass
class StreamState:
    """What the events of one stream told so far."""

    input_tokens: int = 0
    output_tokens: int = 0
    finished: bool = False


def map_event(event: Any, state: StreamState) -> TextDelta | None:
    """One raw Messages stream event → a TextDelta, or None after updating `state`."""
    kind = getattr(event, "type", None)
    if kind == "message_start":
        usage = event.message.usage
        # Cached prompt tokens are billed (at other rates) but reported apart.
        state.input_tokens = (
            (usage.input_tokens or 0)
            + (getattr(usage, "cache_creation_input_tokens", None) or 0)
            + (getattr(usage, "cache_read_input_tokens", None) or 0)
        )
        state.output_tokens = usage.output_tokens or 0
    elif kind == "content_block_delta":
        delta = event.delta
        if getattr(delta, "type", None) == "text_delta" and delta.text:
            return TextDelta(delta.text)
    elif kind == "message_delta":
        # Counts on message_delta are cumulative totals.
        state.output_tokens = event.usage.output_tokens or state.output_tokens
        if getattr(event.usage, "input_tokens", None) is not None:
            state.input_tokens = event.usage.input_tokens
    elif kind == "message_stop":
        state.finished = True
    return None


def map_anthropic_error(exc: Exception, model: str) -> LLMError:
    """Translate an anthropic SDK or raw transport exception, raised after the SDK's retries."""
    import anthropic

    if isinstance(exc, _TRANSPORT_ERRORS):
        return LLMUnavailable(
            f"connection to the Anthropic API failed ({type(exc).__name__})",
            model=model,
            detail=repr(exc),
        )
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMUnavailable(f"request to {model!r} timed out", model=model, detail=str(exc))
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMUnavailable("cannot reach the Anthropic API", model=model, detail=str(exc))
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        message, detail = f"{model!r} failed with HTTP {status}", exc.message
        if is_transient_status(status):  # 529, Anthropic's "overloaded", too
            return LLMUnavailable(
                message,
                model=model,
                status_code=status,
                retry_after=parse_retry_after(exc.response.headers),
                detail=detail,
            )
        return LLMRejected(
            message, model=model, status_code=status, model_not_found=status == 404, detail=detail
        )
    return LLMUnavailable(f"{model!r} failed ({type(exc).__name__})", model=model, detail=str(exc))


def _split(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """System text apart (Anthropic takes it as `system`); same-role neighbours merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1]["role"] == m.role:  # the API wants strict alternation
            turns[-1]["content"] += "\n\n" + m.content
        else:
            turns.append({"role": m.role, "content": m.content})
    return system, turns


class AnthropicLLM:
    """LLM over the Anthropic Messages API, streamed with `messages.stream`.

    Timeouts and retries behave as in OpenAICompatibleLLM: the SDK retries 408/409/429/5xx/529
    before the stream starts and never after. Usage comes from message_start/message_delta.
    """

    provider = "anthropic"  # for metrics and spans

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        context_window: int = 200_000,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_retries: int = 2,
        temperature: float | None = None,
    ) -> None:
        try:
            import anthropic
        except ImportError as exc:
            raise ImportError(MISSING_EXTRA) from exc
        self.model = model
        self.context_window = context_window
        self._temperature = temperature
        if api_key is None and base_url is not None:
            api_key = "unused"  # a gateway or test endpoint that takes no key
        # anthropic.Timeout is whichever httpx flavour this SDK version runs on.
        self._client: Any = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=anthropic.Timeout(timeout, connect=connect_timeout),
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> AsyncIterator[LLMEvent]:
        import anthropic

        failures: tuple[type[Exception], ...] = (anthropic.AnthropicError, *_TRANSPORT_ERRORS)
        system, turns = _split(messages)
        options: dict[str, Any] = {}
        if system:
            options["system"] = system
        if self._temperature is not None:
            options["temperature"] = self._temperature
        manager = self._client.messages.stream(
            model=self.model, max_tokens=max_tokens, messages=turns, **options
        )
        state = StreamState()
        sent = 0
        try:
            # Entering sends the request; leaving (however) closes the HTTP response.
            async with manager as events:
                async for event in events:
                    delta = map_event(event, state)
                    if delta is not None:
                        sent += 1
                        yield delta
        except failures as exc:
            if sent:
                raise LLMStreamBroken(
                    f"the stream from {self.model!r} broke after {sent} deltas",
                    detail=repr(exc),
                    model=self.model,
                ) from exc
            raise map_anthropic_error(exc, self.model) from exc
        if not state.finished:
            message = f"the stream from {self.model!r} ended without message_stop"
            if sent:
                raise LLMStreamBroken(message, model=self.model)
            raise LLMUnavailable(message, model=self.model)
        yield Usage(state.input_tokens, state.output_tokens, model=self.model)
