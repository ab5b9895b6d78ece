"""OpenAI-compatible endpoints read by the official `openai` SDK with strict validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.integration.corpus import DOCS, post_all
from tests.integration.faults import broken, slow_start, transformed

QUESTION = [{"role": "user", "content": "Which volcano in Sicily is most active?"}]


@pytest.fixture
def loaded(server: Any) -> Any:
    post_all(server)
    return server


@pytest.fixture
def client(loaded: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=loaded.url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


def test_models_are_listed_and_retrievable(loaded: Any, client: openai.OpenAI) -> None:
    post_all(loaded, [{**d, "id": d["id"] + "-m"} for d in DOCS], collection="manuals")
    ids = [m.id for m in client.models.list()]
    assert ids[:3] == ["citeline", "citeline-precise", "citeline-broad"]
    assert "citeline/manuals" in ids and "citeline-broad/manuals" in ids
    assert client.models.retrieve("citeline-precise/manuals").owned_by == "citeline"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_completion_with_usage_and_citations(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="citeline", messages=QUESTION, temperature=0.3, top_p=0.9, user="someone", seed=7
    )  # sampling fields are accepted and ignored
    assert done.object == "chat.completion" and done.model == "citeline"
    choice = done.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content and "Etna" in choice.message.content
    assert done.usage is not None and done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    citations = (choice.message.model_extra or {})["citations"]
    assert citations[0]["n"] == 1 and citations[0]["document_id"] == "volcano"
    assert citations[0]["cited"] is True and "Etna" in citations[0]["text"]


def test_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="citeline", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert {c.model for c in chunks} == {"citeline"}
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, last = chunks
    assert all(c.usage is None for c in body)
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    finish = body[-1]
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in body[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert "Etna" in text and "[1]" in text
    assert (finish.model_extra or {})["citations"][0]["cited"] is True


def test_stream_without_include_usage_has_no_usage_field(
    loaded: Any, client: openai.OpenAI
) -> None:
    chunks = list(client.chat.completions.create(model="citeline", messages=QUESTION, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.choices for c in chunks)
    with (
        httpx.Client(base_url=loaded.url, timeout=30) as c,
        c.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "citeline", "messages": QUESTION, "stream": True},
        ) as r,
    ):
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and '"usage"' not in "".join(lines)


def test_model_picks_the_collection(loaded: Any, client: openai.OpenAI) -> None:
    post_all(loaded, [{**d, "id": d["id"] + "-k"} for d in DOCS[1:]], collection="kitchen")
    question = [{"role": "user", "content": "Which glacier is the largest in the Alps?"}]
    done = client.chat.completions.create(model="citeline-broad/kitchen", messages=question)
    docs = {c["document_id"] for c in (done.choices[0].message.model_extra or {})["citations"]}
    assert docs == {"glacier-k"}
    done = client.chat.completions.create(model="citeline-broad", messages=question)
    docs = {c["document_id"] for c in (done.choices[0].message.model_extra or {})["citations"]}
    assert docs == {"glacier"}


def test_history_and_content_parts(loaded: Any, client: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Which volcano is in Sicily?"},
        {"role": "assistant", "content": "Mount Etna [1]."},
        {"role": "user", "content": [{"type": "text", "text": "What does a glacier carve?"}]},
    ]
    done = client.chat.completions.create(model="citeline", messages=messages)
    assert "valleys" in (done.choices[0].message.content or "")


def test_unknown_model_and_bad_input_are_problems(loaded: Any, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert missing.value.response.headers["content-type"] == "application/problem+json"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="citeline", messages=[{"role": "system", "content": "no user turn"}]
        )
    with loaded.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "citeline", "messages": []})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_failure_mid_stream_raises_in_the_client(make_server: Any) -> None:
    loaded = make_server(dependency_overrides=transformed(broken))
    post_all(loaded)
    client = openai.OpenAI(
        base_url=loaded.url + "/v1", api_key="x", max_retries=0, _strict_response_validation=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match="ConnectionError"):
        for chunk in client.chat.completions.create(
            model="citeline", messages=QUESTION, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert len(received) == 2 and received[0] == "" and received[1]  # role, then one delta
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="citeline", messages=QUESTION)


def test_silence_is_filled_with_ping_comments(make_server: Any) -> None:
    live = make_server(sse_ping_interval_s=0.05, dependency_overrides=transformed(slow_start(0.5)))
    post_all(live)
    body = {"model": "citeline", "messages": QUESTION, "stream": True}
    with (
        httpx.Client(base_url=live.url, timeout=30) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        lines = list(r.iter_lines())
    first_content = next(
        i for i, line in enumerate(lines) if '"content":"' in line and '"content":""' not in line
    )
    assert ": ping" in lines[:first_content]
    with openai.OpenAI(
        base_url=live.url + "/v1", api_key="x", _strict_response_validation=True
    ) as c:
        text = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(model="citeline", messages=QUESTION, stream=True)
        )
    assert "Etna" in text and "[1]" in text
