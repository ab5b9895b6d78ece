"""`POST /api/chat` as the AI SDK UI message stream (PROTOCOLS.md §2), over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.query.ask import Asker
from tests.integration.corpus import post_all
from tests.integration.faults import asker_override, broken, slow_start, transformed

V5_TYPES = {
    "start",
    "start-step",
    "source-document",
    "source-url",
    "text-start",
    "text-delta",
    "text-end",
    "finish-step",
    "finish",
    "error",
}


@pytest.fixture
def loaded(server: Any) -> Any:
    post_all(server)
    return server


def user(text: str, mid: str = "u1") -> dict[str, Any]:
    return {"id": mid, "role": "user", "parts": [{"type": "text", "text": text}]}


def stream_lines(live: Any, body: dict[str, Any], path: str = "/api/chat") -> list[str]:
    with httpx.Client(base_url=live.url, timeout=30) as c, c.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        return list(r.iter_lines())


def chunks_of(lines: list[str]) -> list[dict[str, Any]]:
    data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def ask(live: Any, messages: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    body = {"id": "chat-1", "messages": messages, "trigger": "submit-message", **extra}
    return chunks_of(stream_lines(live, body))


def test_stream_order_sources_text_citations_finish(loaded: Any) -> None:
    chunks = ask(loaded, [user("Which volcano in Sicily is most active?")])
    types = [c["type"] for c in chunks]
    assert set(types) <= V5_TYPES | {"data-citations"}
    assert types[:2] == ["start", "start-step"] and chunks[0]["messageId"].startswith("msg_")
    assert types[-2:] == ["finish-step", "finish"]
    first_text = types.index("text-start")
    assert "source-document" in types[:first_text]
    assert types.index("text-end") < types.index("data-citations")
    deltas = [c for c in chunks if c["type"] == "text-delta"]
    assert len(deltas) > 3 and all(d["id"] == "t1" for d in deltas)
    text = "".join(d["delta"] for d in deltas)
    assert "Etna" in text and "[1]" in text

    source = next(c for c in chunks if c["type"] == "source-document")
    meta = source["providerMetadata"]["citeline"]
    assert source["title"] == "Volcanoes" and source["mediaType"] == "text/plain"
    assert source["filename"] == "https://example.org/volcano"
    assert source["sourceId"] == f"volcano#{meta['chunk_id']}"
    assert meta["n"] == 1 and meta["end"] - meta["start"] == len(meta["text"])
    assert meta["score"] > 0

    citations = next(c for c in chunks if c["type"] == "data-citations")
    assert citations["id"] == "citations" and 1 in citations["data"]["cited"]
    for span in citations["data"].get("spans", []):  # where the answerer reports marker spans
        assert text[span["start"] : span["end"]] == f"[{span['n']}]"
    assert citations["data"]["sources"][0] == {"n": 1, "sourceId": source["sourceId"]}

    finish = chunks[-1]
    assert finish["finishReason"] == "stop"
    metadata = finish["messageMetadata"]
    assert metadata["model"] == "extractive" and metadata["latency_ms"] > 0
    assert metadata["usage"]["completion_tokens"] > 0
    assert metadata["usage"]["total_tokens"] == metadata["tokens_used"]


def test_each_event_has_a_resumable_id(loaded: Any) -> None:
    lines = stream_lines(loaded, {"id": "c", "messages": [user("What does a glacier carve?")]})
    ids = [line.removeprefix("id: ") for line in lines if line.startswith("id: ")]
    runs = {i.rsplit("-", 1)[0] for i in ids}
    assert len(runs) == 1
    assert [int(i.rsplit("-", 1)[1]) for i in ids] == list(range(1, len(ids) + 1))
    assert len(ids) == len(chunks_of(lines))


seen: list[dict[str, Any]] = []


class SpyAsker:
    """The real asker, recording what each answer run was asked."""

    def __init__(self, inner: Asker) -> None:
        self.inner = inner

    async def ask(self, scope: Any, question: str, *args: Any, **kwargs: Any) -> Any:
        seen.append({"question": question, "history": kwargs.get("history")})
        return await self.inner.ask(scope, question, *args, **kwargs)


def spied(make_server: Any) -> Any:
    seen.clear()
    live = make_server(dependency_overrides=asker_override(SpyAsker))
    post_all(live)
    return live


def test_unknown_parts_and_history_are_accepted(make_server: Any) -> None:
    """An assistant turn comes back with every part it streamed, plus parts we never sent."""
    loaded = spied(make_server)
    first = ask(loaded, [user("Which volcano is in Sicily?")])
    answer = "".join(c["delta"] for c in first if c["type"] == "text-delta")
    assistant = {
        "id": "a1",
        "role": "assistant",
        "metadata": first[-1]["messageMetadata"],
        "parts": [
            {"type": "step-start"},
            *[{**c, "type": "source-document"} for c in first if c["type"] == "source-document"],
            {"type": "text", "text": answer, "state": "done"},
            {"type": "data-citations", "id": "citations", "data": {"cited": [1]}},
            {"type": "reasoning", "text": "hmm", "state": "done"},
            {"type": "tool-lookup", "toolCallId": "x", "state": "output-available", "input": {}},
            {"type": "a-part-from-the-future", "whatever": [1, 2, 3]},
        ],
    }
    follow = [
        user("Which volcano is in Sicily?"),
        assistant,
        user("What does a glacier carve?", "u2"),
    ]
    chunks = ask(loaded, follow, someAppField={"nested": True})
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert "valleys" in text
    assert seen[-1]["question"] == "What does a glacier carve?"
    history = [(t.role, t.content) for t in seen[-1]["history"]]
    assert history == [("user", "Which volcano is in Sicily?"), ("assistant", answer)]


def test_regenerate_answers_the_last_user_message(loaded: Any) -> None:
    chunks = ask(
        loaded, [user("How does sourdough rise?")], trigger="regenerate-message", messageId="a1"
    )
    assert "yeast" in "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"messages": []}, 422, "messages"),
        ({"messages": [{"role": "user", "parts": [{"type": "image"}]}]}, 400, "no text"),
        (
            {"messages": [{"role": "assistant", "parts": [{"type": "text", "text": "x"}]}]},
            400,
            "user",
        ),
        ({"messages": [{"role": "wizard", "parts": []}]}, 422, "role"),
        ({"id": "../etc", "messages": [user("q")]}, 422, "id"),
        ({"messages": [user("q" * 4001)]}, 400, "4000"),
        ({"messages": [user("q")], "max_results": 21}, 422, "max_results"),
        ({"messages": [user("q")], "collection": "no spaces"}, 422, "collection"),
    ],
)
def test_bad_requests_are_problem_json(
    loaded: Any, body: dict[str, Any], status: int, needle: str
) -> None:
    with loaded.client() as c:
        r = c.post("/api/chat", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]


def test_bad_protocol_parameter_is_problem_json(loaded: Any) -> None:
    with loaded.client() as c:
        r = c.post("/api/chat?protocol=carrier-pigeon", json={"messages": [user("q")]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_failure_mid_stream_is_an_error_chunk_then_done(make_server: Any) -> None:
    loaded = make_server(dependency_overrides=transformed(broken))
    post_all(loaded)
    chunks = ask(loaded, [user("Which volcano?")])
    types = [c["type"] for c in chunks]
    assert types[-2:] == ["text-end", "error"] and "finish" not in types
    assert "ConnectionError" in chunks[-1]["errorText"]


def test_silence_is_filled_with_ping_comments(make_server: Any) -> None:
    live = make_server(sse_ping_interval_s=0.05, dependency_overrides=transformed(slow_start(0.5)))
    post_all(live)
    lines = stream_lines(live, {"messages": [user("Which volcano is in Sicily?")]})
    first_text = next(i for i, line in enumerate(lines) if '"text-start"' in line)
    assert ": ping" in lines[:first_text]


def test_chat_page_is_served(loaded: Any) -> None:
    with loaded.client() as c:
        page = c.get("/")
        script = c.get("/static/chat.js")
        missing = c.get("/static/nope.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/chat.js"' in page.text and "/static/chat.css" in page.text
    assert script.status_code == 200 and "/api/chat" in script.text
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
