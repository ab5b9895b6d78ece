"""OpenAICompatibleLLM against the OpenAI stub over loopback HTTP (the real SDK, no mocks)."""

from __future__ import annotations

import httpx
import openai
import pytest

from service.llm.base import (
    LLMRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    Usage,
    estimate_prompt_tokens,
)
from service.llm.chat_stream import InvalidChunk, _EventSplitter, _parse_chunk
from service.llm.openai_compat import OpenAICompatibleLLM, map_openai_error
from tests.stubs.openai_stub import StubServer, closed_port_url
from tests.stubs.stub_payloads import count_tokens
from tests.unit.conftest import MESSAGES, REPLY, MakeLLM, chat_requests, collect


async def test_streams_deltas_then_reported_usage(
    openai_stub: StubServer, make_llm: MakeLLM
) -> None:
    openai_stub.configure(chunk_interval=0.02)  # tokens come apart, so deltas do too
    text, usage, events = await collect(make_llm(), max_tokens=64)

    assert text == REPLY
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1
    assert usage is not None and events[-1] is usage
    assert usage == Usage(estimate_prompt_tokens(MESSAGES), count_tokens(REPLY), "stub-chat")
    [request] = chat_requests(openai_stub)
    body = request.body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64 and "temperature" not in body
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]


async def test_max_completion_tokens_and_temperature(
    openai_stub: StubServer, make_llm: MakeLLM
) -> None:
    await collect(make_llm(max_tokens_param="max_completion_tokens", temperature=0.0), max_tokens=9)
    body = chat_requests(openai_stub)[0].body
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    assert body["temperature"] == 0.0


def test_missing_usage_is_estimated_with_tiktoken() -> None:
    llm = OpenAICompatibleLLM(model="m", base_url="http://127.0.0.1:9/v1")
    usage = llm._usage(None, MESSAGES, ["Etna ", "erupts."])
    assert usage == Usage(
        estimate_prompt_tokens(MESSAGES), count_tokens("Etna erupts."), "m", estimated=True
    )


@pytest.mark.parametrize(
    ("status", "not_found"), [(400, False), (401, False), (403, False), (404, True)]
)
async def test_permanent_statuses_are_rejected_without_retry(
    openai_stub: StubServer, make_llm: MakeLLM, status: int, not_found: bool
) -> None:
    openai_stub.faults.error(status)
    with pytest.raises(LLMRejected) as caught:
        await collect(make_llm())
    assert caught.value.status_code == status and caught.value.model_not_found is not_found
    assert len(chat_requests(openai_stub)) == 1


async def test_exhausted_quota_is_permanent(openai_stub: StubServer, make_llm: MakeLLM) -> None:
    openai_stub.faults.rate_limit(1, code="insufficient_quota")
    with pytest.raises(LLMRejected):
        await collect(make_llm(max_retries=0))


async def test_unknown_model_is_model_not_found(openai_stub: StubServer, make_llm: MakeLLM) -> None:
    openai_stub.configure(strict_models=True)
    with pytest.raises(LLMRejected) as caught:
        await collect(make_llm(model="gpt-nonexistent"))
    assert caught.value.model_not_found and caught.value.model == "gpt-nonexistent"


async def test_refused_connection_is_unavailable(make_llm: MakeLLM) -> None:
    # The SDK's aiohttp transport calls a refused connection a timeout; the message must not.
    with pytest.raises(LLMUnavailable, match="cannot reach the LLM server") as caught:
        await collect(make_llm(base_url=closed_port_url(), max_retries=0))
    assert "timed out" not in str(caught.value)


async def test_a_silent_server_is_a_timeout(openai_stub: StubServer, make_llm: MakeLLM) -> None:
    openai_stub.faults.stall(5.0)
    with pytest.raises(LLMUnavailable, match="timed out"):
        await collect(make_llm(timeout=0.3, max_retries=0))


@pytest.mark.parametrize("mode", ["abort", "eof", "error"])
async def test_cut_after_first_deltas_is_stream_broken(
    openai_stub: StubServer, make_llm: MakeLLM, mode: str
) -> None:
    openai_stub.faults.close_after(2, mode=mode)
    seen: list[str] = []
    with pytest.raises(LLMStreamBroken):
        async for event in make_llm().stream(MESSAGES, max_tokens=64):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
    assert "".join(seen) == "Based on"  # the two tokens sent before the cut, nothing else
    assert len(chat_requests(openai_stub)) == 1  # the SDK never retries a started stream


@pytest.mark.parametrize("mode", ["abort", "eof"])
async def test_cut_before_any_delta_is_unavailable(
    openai_stub: StubServer, make_llm: MakeLLM, mode: str
) -> None:
    openai_stub.faults.close_after(0, mode=mode)
    with pytest.raises(LLMUnavailable):
        await collect(make_llm())


async def test_tokens_that_arrive_together_leave_as_one_delta(
    openai_stub: StubServer, make_llm: MakeLLM
) -> None:
    """No chunk interval: the stub writes the whole reply at once, and a reader that finds
    several chunks in one read forwards them as one delta instead of one event each."""
    text, _, events = await collect(make_llm(), max_tokens=64)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert text == REPLY
    assert len(deltas) < len(REPLY.split())


def test_event_splitter_handles_any_line_breaks_and_split_reads() -> None:
    splitter = _EventSplitter()
    stream = b'data: {"a":1}\r\n\r\n: comment\nevent: x\ndata: {"b":\ndata: 2}\n\ndata:[DONE]\r\r'
    # One byte per read: every boundary (CR|LF, a UTF-8 sequence) falls between two reads.
    events = [e for i in range(len(stream)) for e in splitter.feed(stream[i : i + 1])]
    assert events == ['{"a":1}', '{"b":\n2}', "[DONE]"]
    assert _EventSplitter().feed('data: "é"\n\n'.encode()) == ['"é"']


def test_chunk_parsing_is_strict_about_shape() -> None:
    request = httpx.Request("POST", "http://llm/v1/chat/completions")
    chunk = _parse_chunk(
        '{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}],'
        '"usage":{"prompt_tokens":5,"completion_tokens":1}}',
        request,
    )
    assert chunk.text == "Hi" and not chunk.finished and chunk.usage == (5, 1)
    assert _parse_chunk('{"choices":[{"finish_reason":"stop"}]}', request).finished
    for bad in ["not json", "[]", '{"choices":{"a":1}}', '{"choices":[1]}']:
        with pytest.raises(InvalidChunk):
            _parse_chunk(bad, request)
    with pytest.raises(openai.APIError, match="overloaded"):
        _parse_chunk('{"error":{"message":"overloaded"}}', request)
    assert isinstance(map_openai_error(InvalidChunk("x"), "m"), LLMRejected)
