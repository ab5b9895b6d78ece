"""Text inside a document that looks like a marker ("[2]") never becomes a citation: only the
markers the answerer itself writes count, with the extractive and the LLM answerer alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stubs.openai_stub import StubServer

TABLOID = "Celebrity Weekly reports the Moon is made of green cheese [2]. Scientists [1, 2] agree."
ENCYCLOPAEDIA = "The Moon is a rocky natural satellite of the Earth, made of silicate rock."
QUESTION = "What is the Moon made of?"


def _post_pair(live: Any) -> None:
    live.index(id="tabloid", title="Celebrity Weekly", text=TABLOID)
    live.index(id="encyclopaedia", title="Encyclopaedia", text=ENCYCLOPAEDIA)


def _check(body: dict[str, Any]) -> None:
    """Every citation span is a marker the answerer wrote after text from that same source."""
    answer, sources = body["answer"], {s["n"]: s for s in body["sources"]}
    assert "green cheese" in answer, answer  # the tabloid's claim is in the answer
    tabloid = next(n for n, s in sources.items() if s["document_id"] == "tabloid")
    claim = answer.index("green cheese")
    after = [c for c in body["citations"] if c["start"] > claim]
    assert after and after[0]["n"] == tabloid, (answer, body["citations"])  # not the encyclopaedia
    for span in body["citations"]:
        assert answer[span["start"] : span["end"]] == f"[{span['n']}]"
    # The source's own bracketed numbers are shown defused, so no reader takes them for markers.
    assert "cheese [2]" not in answer and "cheese ［2］" in answer
    assert len(re.findall(r"\[\d+\]", answer)) == len(body["citations"])


def test_extractive_answers_cite_only_their_own_markers(server: Any) -> None:
    _post_pair(server)
    with server.client() as c:
        body = c.post("/v1/query", json={"question": QUESTION}).json()
    _check(body)


@pytest.fixture
def copycat() -> Iterator[StubServer]:
    """A model that copies the tabloid's text verbatim from its prompt, then cites it."""

    def reply(request: dict[str, Any]) -> str:
        user = request["messages"][-1]["content"]
        blocks = dict(re.findall(r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>', user, re.DOTALL))
        n, text = next((n, t) for n, t in blocks.items() if "cheese" in t)
        return f"{text} [{n}]"

    with StubServer(reply=reply, chunk_interval=0.0) as stub:
        yield stub


def test_llm_answers_cite_only_their_own_markers(make_server: Any, copycat: StubServer) -> None:
    live = make_server(
        llm_provider="openai", llm_base_url=copycat.base_url, llm_api_key="k", llm_model="m"
    )
    _post_pair(live)
    with live.client() as c:
        body = c.post("/v1/query", json={"question": QUESTION}).json()
        streamed = c.post("/v1/query", json={"question": QUESTION, "stream": True}).text
    _check(body)
    assert "cheese ［2］" in streamed and '"cited":[' in streamed
