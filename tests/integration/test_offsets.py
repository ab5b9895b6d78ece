"""Offsets in code points and in UTF-16 units (JavaScript) on sources and citations."""

from __future__ import annotations

import json
from typing import Any

from httpx_sse import connect_sse

from tests.integration.corpus import post_all

TEXT = "🌋🌋 Intro line.\n\nMount Etna 😀 in Sicily is one of the most active volcanoes."
DOC = {"id": "emoji", "title": "Emoji", "text": TEXT}
QUESTION = "Which volcano in Sicily is active?"


def js_slice(text: str, start: int, end: int) -> str:
    return text.encode("utf-16-le")[2 * start : 2 * end].decode("utf-16-le")


def test_sources_and_citations_carry_utf16_offsets(server: Any) -> None:
    post_all(server, [DOC])
    with server.client() as c:
        hit = c.post("/v1/search", json={"query": "etna sicily"}).json()["results"][0]
        body = c.post("/v1/query", json={"question": QUESTION}).json()
        with connect_sse(c, "POST", "/v1/query", json={"question": QUESTION, "stream": True}) as s:
            events = {e.event: json.loads(e.data) for e in s.iter_sse() if e.data != "[DONE]"}
    assert TEXT[hit["start"] : hit["end"]] == hit["text"]
    assert js_slice(TEXT, hit["start_utf16"], hit["end_utf16"]) == hit["text"]
    assert hit["start_utf16"] == hit["start"]  # one chunk from the start: same offsets
    answer, citations = body["answer"], body["citations"]
    assert citations, body
    for span in citations:
        marker = f"[{span['n']}]"
        assert answer[span["start"] : span["end"]] == marker
        assert js_slice(answer, span["start_utf16"], span["end_utf16"]) == marker
    # The answer quotes the emoji sentence, so the two counts differ after it.
    assert any(s["start_utf16"] > s["start"] for s in citations)
    assert events["citations"]["spans"] == citations
    source = events["sources"]["sources"][0]
    assert (source["start_utf16"], source["end_utf16"]) == (hit["start_utf16"], hit["end_utf16"])
