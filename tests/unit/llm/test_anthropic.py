"""AnthropicLLM: event mapping, and the real SDK against a tiny fake Messages endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace as NS

import pytest

from service.llm.base import ChatMessage, LLMRejected, LLMStreamBroken, LLMUnavailable, Usage

pytest.importorskip("anthropic", reason="the anthropic extra is not installed")

from service.llm.anthropic import AnthropicLLM, StreamState, _split, map_event
from tests.unit.conftest import collect
from tests.unit.llm.fake_anthropic import FakeAnthropic

MESSAGES = [
    ChatMessage("system", "Cite with [n]."),
    ChatMessage("user", "Where is Etna?"),
]


def test_event_mapping() -> None:
    state = StreamState()
    start = NS(
        type="message_start",
        message=NS(
            usage=NS(
                input_tokens=10,
                output_tokens=1,
                cache_creation_input_tokens=None,
                cache_read_input_tokens=5,
            )
        ),
    )
    assert map_event(start, state) is None and state.input_tokens == 15
    text = map_event(NS(type="content_block_delta", delta=NS(type="text_delta", text="Hi")), state)
    assert text is not None and text.text == "Hi"
    thinking = NS(type="content_block_delta", delta=NS(type="thinking_delta", thinking="hmm"))
    assert map_event(thinking, state) is None
    assert map_event(NS(type="text", text="Hi", snapshot="Hi"), state) is None  # SDK helper
    map_event(NS(type="message_delta", usage=NS(output_tokens=7, input_tokens=None)), state)
    assert (state.input_tokens, state.output_tokens, state.finished) == (15, 7, False)
    map_event(NS(type="message_stop"), state)
    assert state.finished


def test_system_goes_apart_and_turns_alternate() -> None:
    system, turns = _split(
        [
            ChatMessage("system", "S"),
            ChatMessage("user", "a"),
            ChatMessage("user", "b"),
            ChatMessage("assistant", "c"),
            ChatMessage("user", "d"),
        ]
    )
    assert system == "S"
    assert turns == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def claude(fake: FakeAnthropic, **overrides: object) -> AnthropicLLM:
    options: dict[str, object] = {
        "model": "claude-test",
        "base_url": fake.base_url,
        "api_key": "k",
        "timeout": 5.0,
        "max_retries": 2,
        **overrides,
    }
    return AnthropicLLM(**options)  # type: ignore[arg-type]


async def test_streams_through_the_sdk(fake: FakeAnthropic) -> None:
    llm = claude(fake)
    text, usage, _ = await collect(llm, MESSAGES, max_tokens=99)
    await llm.aclose()
    assert text == "Etna is in Sicily [1]."
    assert usage == Usage(42, 3, "claude-test")
    [body] = fake.requests
    assert body["system"] == "Cite with [n]." and body["max_tokens"] == 99
    assert body["messages"] == [{"role": "user", "content": "Where is Etna?"}]
    assert body["stream"] is True


async def test_overloaded_is_retried_then_unavailable(fake: FakeAnthropic) -> None:
    fake.fail(529, n=1)
    llm = claude(fake)
    text, _, _ = await collect(llm, MESSAGES)
    assert text == "Etna is in Sicily [1]." and len(fake.requests) == 2
    fake.fail(529, n=3)
    with pytest.raises(LLMUnavailable) as caught:
        await collect(llm, MESSAGES)
    assert caught.value.status_code == 529 and caught.value.retry_after == pytest.approx(0.01)
    await llm.aclose()


async def test_unknown_model_is_rejected(fake: FakeAnthropic) -> None:
    fake.fail(404, "not_found_error")
    llm = claude(fake)
    with pytest.raises(LLMRejected) as caught:
        await collect(llm, MESSAGES)
    assert caught.value.model_not_found
    await llm.aclose()


async def test_cut_mid_stream_is_broken(fake: FakeAnthropic) -> None:
    fake.cut_after = 1
    llm = claude(fake)
    with pytest.raises(LLMStreamBroken):
        await collect(llm, MESSAGES)
    assert len(fake.requests) == 1
    await llm.aclose()
