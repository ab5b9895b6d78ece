"""Watches each chat model call: time to first token, tokens, errors by kind, and its span."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from service.llm.base import (
    LLM,
    ChatMessage,
    LLMDeadlineExceeded,
    LLMError,
    LLMEvent,
    LLMRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    Usage,
)
from service.telemetry import metrics, tracing


def error_kind(exc: LLMError) -> str:
    """`429`, `timeout`, `5xx`, `4xx`, `stream_broken` or `connection`: a bounded label."""
    if isinstance(exc, LLMStreamBroken):
        return "stream_broken"
    if isinstance(exc, LLMDeadlineExceeded):
        return "timeout"
    status = getattr(exc, "status_code", None)
    if status == 429:
        return "429"
    if isinstance(status, int) and status >= 500:
        return "5xx"
    if isinstance(exc, LLMRejected) or isinstance(status, int):
        return "4xx"
    cause = exc.__cause__
    if isinstance(exc, LLMUnavailable) and cause is not None and "Timeout" in type(cause).__name__:
        return "timeout"
    return "connection"


class _Call:
    def __init__(self, llm: LLM, messages: Sequence[ChatMessage], max_tokens: int) -> None:
        self.provider = str(getattr(llm, "provider", "unknown"))
        self.model = llm.model
        self.started = time.perf_counter()
        self.first = True
        self.text: list[str] | None = [] if tracing.capture_content() else None
        self.span = tracing.start_span(
            f"chat {llm.model}",
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": self.provider,
                "gen_ai.request.model": llm.model,
                "gen_ai.request.max_tokens": max_tokens,
                "gen_ai.input.messages": tracing.content(messages),
            },
        )

    def event(self, event: LLMEvent) -> None:
        if isinstance(event, TextDelta):
            if self.first:
                self.first = False
                ttft = time.perf_counter() - self.started
                metrics.LLM_TTFT.labels(self.provider, self.model).observe(ttft)
            if self.text is not None:
                self.text.append(event.text)
        elif isinstance(event, Usage):
            model = event.model or self.model
            tokens = metrics.LLM_TOKENS
            tokens.labels(self.provider, model, "prompt").inc(event.prompt_tokens)
            tokens.labels(self.provider, model, "completion").inc(event.completion_tokens)
            if self.span is not None:
                self.span.set_attribute("gen_ai.response.model", model)
                self.span.set_attribute("gen_ai.usage.input_tokens", event.prompt_tokens)
                self.span.set_attribute("gen_ai.usage.output_tokens", event.completion_tokens)

    def failed(self, exc: LLMError) -> None:
        kind = error_kind(exc)
        metrics.LLM_ERRORS.labels(self.provider, self.model, kind).inc()
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("error.type", kind)
            self.span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))

    def end(self) -> None:
        if self.span is None:
            return
        if self.text is not None:
            output = [
                {"role": "assistant", "parts": [{"type": "text", "content": "".join(self.text)}]}
            ]
            self.span.set_attribute(
                "gen_ai.output.messages", json.dumps(output, ensure_ascii=False)
            )
        self.span.end()


class LLMTelemetry:
    """The `LLMObserver` the runtime gives the model chain."""

    def call(self, llm: LLM, messages: Sequence[ChatMessage], max_tokens: int) -> Any:
        return _Call(llm, messages, max_tokens)
