"""The stub's chat endpoint, parsed by the real openai SDK over loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.stubs.openai_stub import StubServer, stub_fixture
from tests.stubs.stub_payloads import count_tokens

openai_stub = stub_fixture()

SOURCES = (
    "Answer from the sources and cite them like [n].\n\n"
    "[1] Volcanoes form where magma reaches the surface. They erupt ash.\n"
    "[2] Glaciers are slow rivers of ice.\n\nQuestion: how do volcanoes form?"
)
MESSAGES: list[Any] = [
    {"role": "system", "content": "You answer with citations like [1]."},
    {"role": "user", "content": SOURCES},
]


@pytest.fixture
async def client(openai_stub: StubServer) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(
        base_url=openai_stub.base_url,
        api_key="test-key",
        max_retries=2,
        timeout=5,
        _strict_response_validation=True,
    )
    yield sdk
    await sdk.close()


async def test_completion_is_grounded_and_counts_tokens(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(model="stub-chat", messages=MESSAGES)

    expected = "Based on the sources, Volcanoes form where magma reaches the surface [1]."
    assert result.object == "chat.completion"
    assert result.choices[0].message.content == expected
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    prompt = sum(3 + count_tokens(m["content"]) for m in MESSAGES) + 3
    assert result.usage.prompt_tokens == prompt
    assert result.usage.completion_tokens == count_tokens(expected)
    assert result.usage.total_tokens == prompt + count_tokens(expected)


async def test_stream_with_include_usage_parses_strictly(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="stub-chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first, *content, finish, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant"
    words = [c.choices[0].delta.content for c in content]
    assert "".join(w or "" for w in words).startswith("Based on the sources, Volcanoes")
    assert all(w and len(w.split()) == 1 for w in words)  # one word per chunk
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == count_tokens("".join(w or "" for w in words))


async def test_stream_wire_format(openai_stub: StubServer) -> None:
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        httpx.AsyncClient() as http,
        http.stream("POST", f"{openai_stub.base_url}/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.aiter_lines() if line]

    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all("usage" in e for e in events)  # "usage": null until the last chunk
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0


async def test_stream_without_include_usage_has_no_usage_chunk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_reply_is_scriptable(openai_stub: StubServer, client: AsyncOpenAI) -> None:
    openai_stub.configure(reply="Fixed answer [2].")
    fixed = await client.chat.completions.create(model="m", messages=MESSAGES)
    openai_stub.configure(reply=lambda request: f"{len(request['messages'])} messages")
    scripted = await client.chat.completions.create(model="m", messages=MESSAGES)

    assert fixed.choices[0].message.content == "Fixed answer [2]."
    assert scripted.choices[0].message.content == "2 messages"


async def test_max_tokens_truncates_with_finish_reason_length(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.configure(reply="one two three four five")
    result = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
    assert result.choices[0].message.content == "one two"
    assert result.choices[0].finish_reason == "length"


async def test_no_source_block_gives_fallback(client: AsyncOpenAI) -> None:
    result = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Cite like [1]. What is love?"}]
    )
    assert result.choices[0].message.content == (
        "I could not find the answer in the provided sources."
    )


async def test_close_after_abort_breaks_the_stream_mid_way(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.configure(reply="a b c d e f g h")
    openai_stub.faults.close_after(3)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    seen: list[str] = []

    # The SDK does not wrap errors raised while iterating: this is httpx's own exception.
    with pytest.raises(httpx.RemoteProtocolError):
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    assert "".join(seen) == "a b c"
    [record] = openai_stub.requests()
    assert record.aborted and not record.completed and record.chunks_sent == 3


async def test_close_after_eof_ends_quietly_without_finish_reason(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.faults.close_after(2, mode="eof")
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]  # no error: the SDK does not require [DONE]

    assert len(chunks) == 3
    assert all(c.choices[0].finish_reason is None for c in chunks)


async def test_close_after_error_event_raises_api_error(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.faults.close_after(1, mode="error")
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        async for _ in stream:
            pass


async def test_stub_records_client_disconnect_within_a_second(
    openai_stub: StubServer, client: AsyncOpenAI
) -> None:
    openai_stub.configure(reply=" ".join(["word"] * 500), chunk_interval=0.01)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            break
    await stream.close()
    closed_at = time.monotonic()

    [record] = await openai_stub.await_until(
        lambda rs: rs[0].disconnected_at is not None, timeout=1.0
    )
    assert record.disconnected_at is not None
    assert record.disconnected_at - closed_at < 1.0
    assert not record.completed and record.chunks_sent < 500


async def test_stall_delays_first_byte_until_client_gives_up(openai_stub: StubServer) -> None:
    openai_stub.faults.stall(10, endpoint="chat")
    sdk = AsyncOpenAI(base_url=openai_stub.base_url, api_key="k", max_retries=0, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await sdk.chat.completions.create(model="m", messages=MESSAGES)
    await sdk.close()

    assert time.monotonic() - started < 2
    [record] = await openai_stub.await_until(lambda rs: rs[0].disconnected_at is not None)
    assert record.status is None  # not a byte was sent
