"""Search filters, cited answers, tenant isolation and the SSE streams over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from service.query.answering import NOT_FOUND
from service.store.base import Scope
from tests.integration.corpus import post_all

ALL = {"volcano", "glacier", "sourdough"}
QUERY = "volcano glacier sourdough crust ice bread"


@pytest.fixture
def loaded(server: Any) -> Any:
    post_all(server)
    return server


def ids(live: Any, filters: dict[str, Any]) -> set[str]:
    with live.client() as c:
        r = c.post("/v1/search", json={"query": QUERY, "filters": filters, "max_results": 10})
        assert r.status_code == 200, r.text
        return {h["document_id"] for h in r.json()["results"]}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "eq", "key": "topic", "value": "geology"}, {"volcano", "glacier"}),
        ({"type": "ne", "key": "topic", "value": "geology"}, {"sourdough"}),
        ({"type": "gt", "key": "year", "value": 2019}, {"glacier", "sourdough"}),
        ({"type": "gte", "key": "year", "value": 2021}, {"glacier", "sourdough"}),
        ({"type": "lt", "key": "rating", "value": 4.5}, {"glacier"}),
        ({"type": "lte", "key": "rating", "value": 4.5}, {"glacier", "volcano"}),
        ({"type": "in", "key": "topic", "value": ["baking", "cooking"]}, {"sourdough"}),
        ({"type": "nin", "key": "topic", "value": ["baking"]}, {"volcano", "glacier"}),
        ({"type": "eq", "key": "public", "value": True}, {"volcano", "sourdough"}),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "topic", "value": "geology"},
                    {"type": "gte", "key": "year", "value": 2020},
                ],
            },
            {"glacier"},
        ),
        (
            {
                "type": "or",
                "filters": [
                    {"type": "eq", "key": "topic", "value": "baking"},
                    {"type": "lt", "key": "year", "value": 2020},
                ],
            },
            {"volcano", "sourdough"},
        ),
    ],
)
def test_each_filter_operator(loaded: Any, filters: dict[str, Any], expected: set[str]) -> None:
    assert ids(loaded, filters) == expected


def test_unfiltered_query_sees_all(loaded: Any) -> None:
    with loaded.client() as c:
        r = c.post("/v1/search", json={"query": QUERY, "max_results": 10})
    assert {h["document_id"] for h in r.json()["results"]} == ALL


def test_tenants_are_isolated(loaded: Any) -> None:
    """The API runs as tenant `default`; another tenant's scope sees none of its chunks."""
    retriever = loaded.runtime.retriever
    mine = loaded.run_on_loop(retriever.search(Scope("default", "default"), QUERY, 10))
    theirs = loaded.run_on_loop(retriever.search(Scope("other", "default"), QUERY, 10))
    assert {h.document_id for h in mine} == ALL and theirs == []


def test_query_answers_with_cited_sentences(loaded: Any) -> None:
    with loaded.client() as c:
        body = c.post(
            "/v1/query", json={"question": "Which volcano in Sicily is most active?"}
        ).json()
    assert body["model"] == "extractive"
    assert "Etna" in body["answer"] and "[1]" in body["answer"]
    first = body["sources"][0]
    assert first["n"] == 1 and first["document_id"] == "volcano" and first["cited"] is True
    assert body["tokens_used"] > 0 and body["latency_ms"] > 0
    assert body["usage"]["cost_usd"] == 0.0  # extractive answers spend no paid tokens


def test_unanswerable_question_says_so_without_sources(loaded: Any) -> None:
    with loaded.client() as c:
        body = c.post(
            "/v1/query", json={"question": "What is the boiling point of tungsten?"}
        ).json()
    assert body["answer"] == NOT_FOUND and body["sources"] == []


def test_a_one_document_collection_still_answers(server: Any) -> None:
    """IDF is tiny in a tiny collection; a question whose terms all match is still answered."""
    text = "Mount Etna is an active stratovolcano on the east coast of Sicily."
    server.index(id="etna", text=text, collection="solo")
    with server.client() as c:
        found = c.post("/v1/query", json={"question": "Where is Mount Etna?", "collection": "solo"})
        missing = c.post(
            "/v1/query", json={"question": "Who painted the Mona Lisa?", "collection": "solo"}
        )
    assert found.json()["sources"][0]["document_id"] == "etna" and "[1]" in found.json()["answer"]
    assert missing.json()["answer"] == NOT_FOUND


def _events(response: Any) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in response.iter_sse()]


def test_query_stream_sends_sources_first_then_deltas_usage_done(loaded: Any) -> None:
    with (
        httpx.Client(base_url=loaded.url, timeout=30) as c,
        connect_sse(
            c, "POST", "/v1/query", json={"question": "How does sourdough rise?", "stream": True}
        ) as es,
    ):
        assert es.response.headers["content-type"].startswith("text/event-stream")
        assert es.response.headers["x-accel-buffering"] == "no"
        assert es.response.headers["cache-control"] == "no-cache"
        events = _events(es)
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "message" and events[-1][1] == "[DONE]"
    assert names[-4:-1] == ["citations", "usage", "done"]
    deltas = [json.loads(d)["text"] for n, d in events if n == "delta"]
    assert len(deltas) > 3
    done = json.loads(events[-2][1])
    assert "".join(deltas) == done["answer"] and "[1]" in done["answer"]
    sources = json.loads(events[0][1])["sources"]
    assert sources[0]["document_id"] == "sourdough"


def test_stream_endpoint_sends_plain_text_messages(loaded: Any) -> None:
    with (
        httpx.Client(base_url=loaded.url, timeout=30) as c,
        connect_sse(c, "POST", "/v1/stream", json={"question": "What does a glacier carve?"}) as es,
    ):
        events = _events(es)
    messages = [d for n, d in events if n == "message"]
    assert messages[-1] == "[DONE]"
    text = "".join(json.loads(m)["text"] for m in messages[:-1])
    assert "valleys" in text and "[1]" in text
    assert [n for n, _ in events if n != "message"] == ["sources", "citations", "usage", "done"]
