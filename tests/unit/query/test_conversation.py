"""Follow-up questions rewritten before retrieval: by the LLM (the stub), or by the plain rule."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schemas.query import Turn
from service.llm.base import ChatMessage, Usage
from service.llm.openai_compat import OpenAICompatibleLLM
from service.query.conversation import (
    REWRITE_MAX_TOKENS,
    REWRITE_PROMPT,
    looks_like_follow_up,
    rewrite_question,
    rule_rewrite,
)
from tests.stubs.openai_stub import StubServer, stub_fixture

openai_stub = stub_fixture()

HISTORY = [
    ChatMessage("user", "Where is Mount Etna?"),
    ChatMessage("assistant", "Mount Etna is on the east coast of Sicily [1]."),
]


@pytest.fixture
async def llm(openai_stub: StubServer) -> AsyncIterator[OpenAICompatibleLLM]:
    model = OpenAICompatibleLLM(
        model="stub-chat", base_url=openai_stub.base_url, api_key="k", timeout=5.0, max_retries=0
    )
    yield model
    await model.aclose()


async def test_no_history_no_call(openai_stub: StubServer, llm: OpenAICompatibleLLM) -> None:
    assert await rewrite_question("and its height?", [], llm) == "and its height?"
    assert await rewrite_question("x", [ChatMessage("assistant", "hi")], llm) == "x"
    assert openai_stub.requests() == []


async def test_llm_rewrites_with_the_fixed_prompt(
    openai_stub: StubServer, llm: OpenAICompatibleLLM
) -> None:
    openai_stub.configure(reply='Standalone question: "How tall is Mount Etna?"')
    usages: list[Usage] = []

    rewritten = await rewrite_question("And how tall is it?", HISTORY, llm, on_usage=usages.append)

    assert rewritten == "How tall is Mount Etna?"
    [request] = openai_stub.requests()
    messages = request.body["messages"]
    assert messages[0] == {"role": "system", "content": REWRITE_PROMPT}
    assert "User: Where is Mount Etna?" in messages[1]["content"]
    assert "Last question: And how tall is it?" in messages[1]["content"]
    assert request.body["max_tokens"] == REWRITE_MAX_TOKENS
    assert len(usages) == 1 and usages[0].completion_tokens > 0


async def test_llm_failure_falls_back_to_the_rule(
    openai_stub: StubServer, llm: OpenAICompatibleLLM
) -> None:
    openai_stub.faults.server_error(1)
    assert await rewrite_question("And its height?", HISTORY, llm) == (
        "And its height? (Mount Etna)"
    )


async def test_empty_llm_reply_falls_back_to_the_rule(
    openai_stub: StubServer, llm: OpenAICompatibleLLM
) -> None:
    openai_stub.configure(reply="   ")
    assert await rewrite_question("what about its age?", HISTORY, llm) == (
        "what about its age? (Mount Etna)"
    )


async def test_rule_without_llm() -> None:
    assert await rewrite_question("And its height?", HISTORY, None) == (
        "And its height? (Mount Etna)"
    )


def test_rule_leaves_standalone_questions_alone() -> None:
    assert rule_rewrite("Where is Mount Vesuvius located?", HISTORY) == (
        "Where is Mount Vesuvius located?"
    )


def test_follow_up_detection() -> None:
    assert looks_like_follow_up("And Vesuvius?")
    assert looks_like_follow_up("What about the eruptions in 1669?")
    assert looks_like_follow_up("How tall?")
    assert looks_like_follow_up("When did it last erupt?")
    assert not looks_like_follow_up("When did Vesuvius last erupt?")


def test_rule_takes_salient_terms_of_the_previous_question() -> None:
    history = [ChatMessage("user", "What is the population of the city of Catania in Sicily?")]
    assert rule_rewrite("and its mayor?", history) == (
        "and its mayor? (population city Catania Sicily)"
    )


async def test_api_turns_are_accepted_as_history() -> None:
    turns = [Turn(role="user", content="Where is Mount Etna?")]
    assert await rewrite_question("And its height?", turns, None) == (
        "And its height? (Mount Etna)"
    )
