"""Unit fixtures: the OpenAI stub on loopback and LLMs that are closed after each test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from schemas.query import Source
from service.llm.base import LLM, ChatMessage, LLMEvent, TextDelta, Usage
from service.llm.openai_compat import OpenAICompatibleLLM
from tests.stubs.openai_stub import StubServer, stub_fixture

openai_stub = stub_fixture()

MESSAGES = [
    ChatMessage("system", "Answer from the sources, citing them with [n]."),
    ChatMessage("user", '<source id="1">Etna is a volcano in Sicily. It erupts often.</source>'),
]
REPLY = "Based on the sources, Etna is a volcano in Sicily [1]."

MakeLLM = Callable[..., OpenAICompatibleLLM]


@pytest.fixture
async def make_llm(openai_stub: StubServer) -> AsyncIterator[MakeLLM]:
    made: list[OpenAICompatibleLLM] = []

    def make(**overrides: Any) -> OpenAICompatibleLLM:
        options: dict[str, Any] = {
            "model": "stub-chat",
            "base_url": openai_stub.base_url,
            "api_key": "test-key",
            "timeout": 5.0,
            "max_retries": 2,
            **overrides,
        }
        llm = OpenAICompatibleLLM(**options)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


async def collect(
    llm: LLM, messages: Sequence[ChatMessage] = MESSAGES, max_tokens: int = 256
) -> tuple[str, Usage | None, list[LLMEvent]]:
    """The whole stream: joined text, the final Usage, every event."""
    events = [e async for e in llm.stream(messages, max_tokens=max_tokens)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage = events[-1] if events and isinstance(events[-1], Usage) else None
    return text, usage, events


def chat_requests(stub: StubServer) -> list[Any]:
    return stub.requests("/v1/chat/completions")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}


def source(n: int, text: str, *, title: str | None = None, score: float = 1.0) -> Source:
    return Source(
        n=n,
        document_id=f"doc{n}",
        chunk_id=f"doc{n}:0",
        title=title,
        source=None,
        text=text,
        start=0,
        end=len(text),
        score=score,
        relevance=1.0,
        metadata={},
        cited=False,
    )
