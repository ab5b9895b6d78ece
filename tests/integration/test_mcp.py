"""The MCP server at /mcp, through the official MCP client over real HTTP: tools, cited
answers, passages, and the same keys, scopes and tenants as the REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.conftest import LiveServer
from tests.integration.corpus import post_all
from tests.integration.security.helpers import ADMIN_KEY, Keyed, bearer
from tests.stubs.openai_stub import StubServer

TOOLS = {"search", "answer", "list_collections", "list_documents", "get_passage"}


async def call(
    url: str, tool: str, arguments: dict[str, Any], key: str | None = None
) -> CallToolResult:
    """One tool call in a fresh session, as an assistant makes it."""
    async with (
        httpx.AsyncClient(headers=bearer(key) if key else {}, timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await session.call_tool(tool, arguments)


async def tool_names(url: str, key: str | None = None) -> set[str]:
    async with (
        httpx.AsyncClient(headers=bearer(key) if key else {}, timeout=30) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return {t.name for t in (await session.list_tools()).tools}


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(chunk_interval=0.0) as s:
        yield s


def llm_settings(stub: StubServer) -> dict[str, Any]:
    return {
        "llm_provider": "openai",
        "llm_base_url": stub.base_url,
        "llm_api_key": "test-key",
        "llm_model": "stub-chat",
    }


@pytest.fixture
def llm_server(make_server: Any, stub: StubServer) -> LiveServer:
    live: LiveServer = make_server(**llm_settings(stub))
    post_all(live)
    return live


async def test_the_client_lists_the_tools_and_gets_a_cited_answer(llm_server: LiveServer) -> None:
    assert await tool_names(llm_server.url) == TOOLS
    result = await call(llm_server.url, "answer", {"question": "Which volcano is most active?"})
    assert not result.isError, text_of(result)
    assert "[1]" in text_of(result)
    structured = result.structuredContent or {}
    assert structured["answer"] == text_of(result) and structured["model"] == "stub-chat"
    first = structured["sources"][0]
    assert first["n"] == 1 and first["cited"] is True and first["document_id"] == "volcano"
    assert first["end"] > first["start"] and first["title"] == "Volcanoes"


async def test_search_passages_point_into_the_document_text(server: LiveServer) -> None:
    post_all(server)
    url = server.url
    result = await call(url, "search", {"query": "glacier in the Alps", "max_results": 2})
    passages = (result.structuredContent or {})["passages"]
    top = passages[0]
    assert top["document_id"] == "glacier" and top["relevance"] > 0 and len(passages) <= 2
    span = {"document_id": "glacier", "start": top["start"], "end": top["end"]}
    passage = await call(url, "get_passage", span)
    assert (passage.structuredContent or {})["text"] == top["text"]
    collections = await call(url, "list_collections", {})
    assert (collections.structuredContent or {})["collections"] == ["default"]
    listed = await call(url, "list_documents", {"limit": 2})
    page = listed.structuredContent or {}
    assert [d["document_id"] for d in page["documents"]] == ["glacier", "sourdough"]
    assert page["next_cursor"] is not None


async def test_tool_errors_carry_the_problem_not_a_traceback(server: LiveServer) -> None:
    missing = await call(server.url, "get_passage", {"document_id": "nope", "start": 0, "end": 5})
    assert missing.isError and "Not Found: no document 'nope'" in text_of(missing)
    assert "Traceback" not in text_of(missing)
    bad = await call(server.url, "get_passage", {"document_id": "x", "start": 9, "end": 2})
    assert bad.isError and "Bad Request: end must be at least start" in text_of(bad)
    invalid = await call(server.url, "search", {"query": "q", "max_results": 0})
    assert invalid.isError and "max_results" in text_of(invalid)


async def test_keys_scopes_and_tenants_hold_over_mcp(make_server: Any, stub: StubServer) -> None:
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY, **llm_settings(stub)))
    acme = keyed.mint("acme", scopes=("read", "write"))["key"]
    globex = keyed.mint("globex", scopes=("read",))["key"]
    writer_only = keyed.mint("acme", scopes=("write",))["key"]
    keyed.index(acme, id="etna", title="Etna", text="Mount Etna in Sicily erupts often.")
    url = keyed.live.url

    assert await tool_names(url, acme) == TOOLS
    own = await call(url, "answer", {"question": "Does Mount Etna in Sicily erupt often?"}, acme)
    assert not own.isError and "[1]" in text_of(own)
    assert (own.structuredContent or {})["sources"][0]["document_id"] == "etna"

    foreign = await call(url, "search", {"query": "Etna Sicily"}, globex)
    assert (foreign.structuredContent or {})["passages"] == []
    foreign_docs = await call(url, "list_documents", {}, globex)
    assert (foreign_docs.structuredContent or {})["documents"] == []
    peek = await call(url, "get_passage", {"document_id": "etna", "start": 0, "end": 9}, globex)
    assert peek.isError and "Not Found" in text_of(peek)

    anonymous = await call(url, "search", {"query": "Etna"})
    assert anonymous.isError and "Unauthorized: an API key is required" in text_of(anonymous)
    wrong = await call(url, "search", {"query": "Etna"}, "cl_bogus_key")
    assert wrong.isError and "Unauthorized" in text_of(wrong)
    unscoped = await call(url, "search", {"query": "Etna"}, writer_only)
    assert unscoped.isError and "lacks the 'read' scope" in text_of(unscoped)


def test_mcp_sits_behind_the_apps_guards(make_server: Any) -> None:
    live: LiveServer = make_server(max_request_bytes=4096)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {"accept": "application/json, text/event-stream"}
    with live.client(headers=headers) as c:
        foreign = c.post("/mcp", json=init, headers={"origin": "https://evil.example"})
        rebound = c.post("/mcp", json=init, headers={"host": "attacker.example"})
        huge = c.post("/mcp", json={**init, "params": {"pad": "x" * 8192}})
    assert foreign.status_code == 403 and "origin" in foreign.json()["detail"]
    assert rebound.status_code == 421
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json"
    assert all(r.headers.get("x-request-id") for r in (foreign, rebound, huge))
