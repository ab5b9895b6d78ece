"""OpenTelemetry spans, when enabled (CITELINE_OTEL_ENABLED=true, `pip install 'citeline[otel]'`).

Spans: each HTTP request (its parent taken from a `traceparent` header), retrieval, each
embedding call, each chat call (GenAI attributes: operation, provider, model, token counts;
prompt and answer text only with CITELINE_OTEL_CAPTURE_CONTENT), and each arq job, whose
parent is the request that enqueued it (the context travels as the job's `trace` argument).
Exported over OTLP/HTTP, configured by the standard OTEL_* variables (endpoint, headers,
service name). Disabled, every helper here is a no-op costing one global read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = ["carrier", "enabled", "request_span", "setup", "span", "start_span", "use"]

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_capture_content = False
MISSING_EXTRA = "CITELINE_OTEL_ENABLED=true needs OpenTelemetry: pip install 'citeline[otel]'"


def use(provider: TracerProvider | None, *, capture_content: bool = False) -> None:
    """Trace into `provider` (None: stop tracing). Tests pass one with an in-memory exporter."""
    global _tracer, _provider, _capture_content
    _provider = provider
    _tracer = provider.get_tracer("citeline") if provider is not None else None
    _capture_content = capture_content


def setup(enabled_: bool, capture_content: bool) -> None:
    """The process's tracer: OTLP/HTTP export in batches, as the OTEL_* variables say."""
    if not enabled_:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise SystemExit(f"citeline: {MISSING_EXTRA}") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "citeline"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use(provider, capture_content=capture_content)


def shutdown() -> None:
    """Export what is still buffered (at exit)."""
    if _provider is not None:
        _provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def capture_content() -> bool:
    return _capture_content


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span | None]:
    """A child of the current span, current inside the block; None when tracing is off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=_attributes(attributes)) as current:
        yield current


def start_span(name: str, **attributes: Any) -> Any:
    """A child of the current span that the caller ends (for async generators, where a current
    span cannot cross a `yield`); None when tracing is off."""
    if _tracer is None:
        return None
    return _tracer.start_span(name, attributes=_attributes(attributes))


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, to hand to a job; None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry import propagate

    out: dict[str, str] = {}
    propagate.inject(out)
    return out or None


@contextmanager
def job_span(name: str, parent: Mapping[str, str] | None, **attributes: Any) -> Iterator[Any]:
    """A span current inside the block whose parent is the carrier a job was given."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import propagate

    context = propagate.extract(parent) if parent else None
    with _tracer.start_as_current_span(
        name, context=context, attributes=_attributes(attributes)
    ) as current:
        yield current


@contextmanager
def request_span(method: str, path: str, headers: Sequence[tuple[bytes, bytes]]) -> Iterator[Any]:
    """The server span of one HTTP request, current inside the block; the caller names it
    after its route template once routing is done (`span.update_name`)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    given = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _TRACE_HEADERS}
    with _tracer.start_as_current_span(
        method,
        context=propagate.extract(given),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    ) as current:
        yield current


_TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")


def embedding_span(embedder: Any, tokens: int) -> Any:
    """The span of one embedding call (GenAI conventions); `embedder` has `model`, `provider`."""
    return span(
        f"embeddings {embedder.model}",
        **{
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": getattr(embedder, "provider", None),
            "gen_ai.request.model": embedder.model,
            "gen_ai.usage.input_tokens": tokens,
        },
    )


def content(messages: Sequence[Any]) -> str | None:
    """Chat messages as the GenAI `gen_ai.input.messages` JSON, only when capture is on."""
    if not _capture_content:
        return None
    return json.dumps(
        [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in messages],
        ensure_ascii=False,
    )
