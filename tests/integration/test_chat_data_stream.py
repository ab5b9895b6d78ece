"""`POST /api/chat` as the AI SDK v4 data stream (PROTOCOLS.md §3), chosen by shape or query."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.corpus import post_all
from tests.integration.faults import broken, slow_start, transformed

GUIDE_BODY = {  # the backend guide's shape: OpenAI-like messages with content strings
    "messages": [{"role": "user", "content": "Which volcano in Sicily is most active?"}],
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "stream": True,
}


@pytest.fixture
def loaded(server: Any) -> Any:
    post_all(server)
    return server


def parts(live: Any, body: dict[str, Any], query: str = "") -> list[tuple[str, Any]]:
    with (
        httpx.Client(base_url=live.url, timeout=30) as c,
        c.stream("POST", "/api/chat" + query, json=body) as r,
    ):
        assert r.status_code == 200, r.read()
        assert r.headers["x-vercel-ai-data-stream"] == "v1"
        assert r.headers["content-type"].startswith("text/plain")
        raw = r.read().decode()
    assert raw.endswith("\n")
    out = []
    for line in raw.split("\n")[:-1]:
        code, sep, value = line.partition(":")
        assert sep and len(code) == 1, line
        out.append((code, json.loads(value)))
    return out


def test_guide_shape_gets_tool_call_result_sources_text_finish(loaded: Any) -> None:
    got = parts(loaded, GUIDE_BODY)
    codes = [c for c, _ in got]
    assert codes[:3] == ["f", "9", "a"] and codes[-2:] == ["e", "d"]
    call, result = got[1][1], got[2][1]
    assert call["toolName"] == "retrieve" and call["toolCallId"] == result["toolCallId"]
    assert call["args"]["query"] == "Which volcano in Sicily is most active?"
    sources = [v for c, v in got if c == "h"]
    assert sources and codes.index("h") < codes.index("0")
    assert sources[0]["sourceType"] == "url" and sources[0]["url"] == "https://example.org/volcano"
    assert sources[0]["title"] == "Volcanoes"
    assert result["result"]["sources"][0]["document_id"] == "volcano"
    text = "".join(v for c, v in got if c == "0")
    assert "Etna" in text and "[1]" in text
    annotations = [v for c, v in got if c == "8"]
    assert len(annotations) == 1 and len(annotations[0]) == 1
    citations = annotations[0][0]
    assert citations["type"] == "citations" and citations["cited"] == [1]
    for span in citations.get("spans", []):  # marker positions, where the answerer reports them
        assert text[span["start"] : span["end"]] == f"[{span['n']}]"
    finish = got[-1][1]
    assert finish["finishReason"] == "stop"
    assert finish["usage"]["completionTokens"] > 0 and finish["usage"]["promptTokens"] >= 0


def test_ai_sdk_4_shape_with_content_and_parts_gets_the_data_stream(loaded: Any) -> None:
    message = {
        "id": "m1",
        "role": "user",
        "content": "What does a glacier carve?",
        "createdAt": "2025-01-01T00:00:00.000Z",
        "parts": [{"type": "text", "text": "What does a glacier carve?"}],
    }
    got = parts(loaded, {"id": "chat4", "messages": [message]})
    assert "valleys" in "".join(v for c, v in got if c == "0")


def test_protocol_query_overrides_the_shape(loaded: Any) -> None:
    body = {
        "id": "c5",
        "trigger": "submit-message",
        "messages": [
            {"role": "user", "parts": [{"type": "text", "text": "How does sourdough rise?"}]}
        ],
    }
    got = parts(loaded, body, "?protocol=data")
    assert got[-1][0] == "d" and "yeast" in "".join(v for c, v in got if c == "0")
    with (
        httpx.Client(base_url=loaded.url, timeout=30) as c,
        c.stream("POST", "/api/chat?protocol=ui", json=GUIDE_BODY) as r,
    ):
        assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"


def test_failure_mid_stream_is_an_error_part_then_finish(make_server: Any) -> None:
    loaded = make_server(dependency_overrides=transformed(broken))
    post_all(loaded)
    got = parts(loaded, GUIDE_BODY)
    codes = [c for c, _ in got]
    assert codes[-3:] == ["3", "e", "d"] and "0" in codes
    assert "ConnectionError" in got[-3][1]
    assert got[-1][1]["finishReason"] == "error"


def test_silence_is_filled_with_empty_data_parts(make_server: Any) -> None:
    live = make_server(sse_ping_interval_s=0.05, dependency_overrides=transformed(slow_start(0.5)))
    post_all(live)
    got = parts(live, GUIDE_BODY)
    codes = [c for c, _ in got]
    first_text = codes.index("0")
    assert ("2", []) in got[:first_text]
    assert all(v == [] for c, v in got if c == "2") and codes[-1] == "d"


def test_retrieval_problem_is_problem_json_before_the_stream(loaded: Any) -> None:
    body = {**GUIDE_BODY, "filters": {"type": "gt", "key": "topic", "value": [1]}}
    with loaded.client() as c:
        r = c.post("/api/chat", json=body)
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"] == "application/problem+json"
