"""OpenTelemetry spans, recorded by the SDK's in-memory exporter: request, retrieval,
embedding and chat spans with GenAI attributes, and the trace carried into an arq job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.telemetry import tracing
from tests.conftest import wait_until
from tests.integration.corpus import post_all
from tests.integration.workers.helpers import scaled_server
from tests.stubs.openai_stub import StubServer

DIM = 16
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def exporter_fixture(capture_content: bool) -> Any:
    @pytest.fixture
    def fixture() -> Iterator[InMemorySpanExporter]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing.use(provider, capture_content=capture_content)
        yield exporter
        tracing.use(None)
        provider.shutdown()

    return fixture


spans = exporter_fixture(capture_content=False)
spans_with_content = exporter_fixture(capture_content=True)


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


def llm_server(make_server: Any, stub: StubServer) -> Any:
    live = make_server(
        llm_provider="openai", llm_base_url=stub.base_url, llm_model="stub-chat",
        llm_rewrite_questions=False, embedding_base_url=stub.base_url,
        embedding_model="stub-embed", embedding_dimension=DIM,
    )  # fmt: skip
    post_all(live)
    return live


def test_a_query_is_one_trace_of_request_retrieval_embedding_and_chat(
    make_server: Any, stub: StubServer, spans: InMemorySpanExporter
) -> None:
    live = llm_server(make_server, stub)
    spans.clear()
    with live.client() as c:
        r = c.post("/v1/query", json={"question": "Where is Etna?"},
                   headers={"traceparent": PARENT})  # fmt: skip
    assert r.status_code == 200
    wait_until(lambda: named(spans, "POST /v1/query"))
    (request,) = named(spans, "POST /v1/query")
    assert format(request.context.trace_id, "032x") == TRACE_ID  # the client's trace goes on
    assert request.attributes["http.route"] == "/v1/query"
    assert request.attributes["http.response.status_code"] == 200
    (retrieval,) = named(spans, "retrieval")
    (embedding,) = named(spans, "embeddings stub-embed")
    (chat,) = named(spans, "chat stub-chat")
    for child in (retrieval, chat):
        assert child.context.trace_id == request.context.trace_id
        assert child.parent is not None and child.parent.span_id == request.context.span_id
    assert embedding.parent is not None and embedding.parent.span_id == retrieval.context.span_id
    assert embedding.attributes["gen_ai.operation.name"] == "embeddings"
    assert embedding.attributes["gen_ai.provider.name"] == "openai"
    assert embedding.attributes["gen_ai.usage.input_tokens"] > 0
    attrs = chat.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "stub-chat"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs


def test_prompt_and_answer_only_with_content_capture(
    make_server: Any, stub: StubServer, spans_with_content: InMemorySpanExporter
) -> None:
    live = llm_server(make_server, stub)
    with live.client() as c:
        answer = c.post("/v1/query", json={"question": "Where is Etna?"}).json()["answer"]
    (chat,) = named(spans_with_content, "chat stub-chat")
    assert "Where is Etna?" in chat.attributes["gen_ai.input.messages"]
    assert answer.split("[")[0].strip() in chat.attributes["gen_ai.output.messages"]


def test_a_job_span_joins_the_trace_of_the_request_that_enqueued_it(
    make_server: Any, redis_server: Any, spans: InMemorySpanExporter
) -> None:
    live = scaled_server(make_server, redis_server.url)
    with live.client() as c:
        r = c.post("/v1/documents", json={"text": "Obsidian is volcanic glass."},
                   headers={"traceparent": PARENT})  # fmt: skip
    assert r.status_code == 202
    assert live.wait_job(r.json()["job_id"])["status"] == "completed"
    wait_until(lambda: named(spans, "index_document"))
    (job,) = named(spans, "index_document")
    assert format(job.context.trace_id, "032x") == TRACE_ID
    assert job.attributes["citeline.job_id"] == r.json()["job_id"]
    assert job.attributes["citeline.job_status"] == "completed"
