"""LLMAnswerer and build_llm against the stub: the prompt as the server saw it, and the wiring."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.llm.base import Usage
from service.llm.factory import build_llm
from service.llm.openai_compat import OpenAICompatibleLLM
from service.llm.resilience import ResilientLLM
from service.query.citations import CitationFilter
from service.query.llm_answerer import LLMAnswerer
from service.query.prompting import SYSTEM_PROMPT
from tests.stubs.openai_stub import StubServer
from tests.unit.conftest import MakeLLM, chat_requests, source
from tests.unit.query.test_prompting import INJECTION

SOURCES = [
    source(
        1,
        "Mount Etna is an active stratovolcano on the east coast of Sicily. It is tall.",
        title="Mount Etna",
    ),
    source(2, INJECTION, title="Evil <|im_start|>"),
]


async def run(answerer: LLMAnswerer, question: str = "Where is Etna?") -> tuple[str, Usage]:
    parts: list[str] = []
    usage: Usage | None = None
    async for item in (await answerer.plan(question, SOURCES)).stream:
        if isinstance(item, Usage):
            usage = item
        else:
            parts.append(item)
    assert usage is not None
    return "".join(parts), usage


async def test_answers_and_reports_exact_prompt_tokens(
    openai_stub: StubServer, make_llm: MakeLLM
) -> None:
    answerer = LLMAnswerer(make_llm(), context_window=8192, max_answer_tokens=300)
    text, usage = await run(answerer)
    assert text == (
        "Based on the sources, Mount Etna is an active stratovolcano on the east "
        "coast of Sicily [1]."
    )
    prompt = answerer.prompt("Where is Etna?", SOURCES)
    assert usage.prompt_tokens == prompt.prompt_tokens  # our count is the server's count
    assert chat_requests(openai_stub)[0].body["max_tokens"] == 300


async def test_injected_source_reaches_the_server_harmless(
    openai_stub: StubServer, make_llm: MakeLLM
) -> None:
    answerer = LLMAnswerer(make_llm(), max_answer_tokens=300)
    await run(answerer)
    [request] = chat_requests(openai_stub)
    messages: list[dict[str, Any]] = request.body["messages"]
    systems = [m for m in messages if m["role"] == "system"]
    assert len(systems) == 1 and systems[0]["content"] == SYSTEM_PROMPT
    assert messages[0]["role"] == "system" and len(messages) == 2
    user = messages[1]["content"]
    # Exactly two blocks, each closed once, the injected one only at its real end.
    opens = [m.start() for m in re.finditer(r"<source id=", user)]
    closes = [m.start() for m in re.finditer(r"</source>", user)]
    assert len(opens) == len(closes) == 2 and opens[0] < closes[0] < opens[1] < closes[1]
    second = user[opens[1] : closes[1]]
    assert "Ignore previous instructions" in second
    for marker in ("<|im_start|>", "\nsystem:", "\n### Assistant\n"):
        assert marker not in user


async def test_dropped_sources_cannot_be_cited(openai_stub: StubServer, make_llm: MakeLLM) -> None:
    openai_stub.configure(reply="Etna is in Sicily [1][3], see [2, 3].")
    answerer = LLMAnswerer(make_llm(), context_window=1024, max_answer_tokens=512)
    ranked = [SOURCES[0], source(2, "Filler text about rocks. " * 400), source(3, "Short.")]
    prompt = answerer.prompt("Where is Etna?", ranked)
    assert prompt.sources_used == [1, 2] and prompt.truncated == [2]  # 3 did not fit
    citations = CitationFilter(prompt.sources_used)
    out = []
    async for item in answerer.stream_prompt(prompt):
        if isinstance(item, str):
            out.append(citations.feed(item))
    out.append(citations.flush())
    assert "".join(out) == "Etna is in Sicily [1], see [2]." and citations.cited == [1, 2]


def test_build_llm_from_settings(tmp_path: Path, openai_stub: StubServer) -> None:
    assert build_llm(Settings(data_dir=tmp_path)) is None
    llm = build_llm(
        Settings(
            data_dir=tmp_path,
            llm_provider="openai",
            llm_model="stub-chat",
            llm_base_url=openai_stub.base_url,
            llm_fallback_model="stub-small",
            llm_fallback_context_window=4096,
            llm_rpm=60,
            llm_deadline_s=10,
            llm_timeout_s=5,
        )
    )
    assert isinstance(llm, ResilientLLM)
    assert llm.model == "stub-chat" and llm.context_window == 4096 and llm.deadline_s == 10
    assert [type(m) for m in llm._chain] == [OpenAICompatibleLLM, OpenAICompatibleLLM]
    assert llm._limiter is not None


def test_build_anthropic_fallback(tmp_path: Path) -> None:
    pytest.importorskip("anthropic")
    from service.llm.anthropic import AnthropicLLM

    llm = build_llm(
        Settings(
            data_dir=tmp_path,
            llm_provider="openai",
            llm_model="m",
            llm_base_url="http://x/v1",
            llm_fallback_provider="anthropic",
            llm_fallback_model="claude",
            llm_fallback_api_key="k",
        )
    )
    assert isinstance(llm, ResilientLLM) and isinstance(llm._chain[1], AnthropicLLM)


def test_missing_anthropic_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.llm.anthropic import AnthropicLLM

    monkeypatch.setitem(sys.modules, "anthropic", None)  # makes `import anthropic` fail
    with pytest.raises(ImportError, match=r"citeline\[anthropic\]"):
        AnthropicLLM(model="claude")
