"""Limits per key and tenant: requests per window (429 with Retry-After and RateLimit, then
recovery), streams open at once, tokens per window, storage; and what `/v1/usage` reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.integration.security.helpers import ADMIN_KEY, Keyed, bearer
from tests.stubs.openai_stub import StubServer

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Which volcano?"}]}


def test_the_request_limit_answers_429_and_recovers(make_server: Any) -> None:
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY, key_rate_limit="3 per 2 second"))
    key = keyed.mint()["key"]
    other = keyed.mint()["key"]
    with keyed.client(key) as c:
        statuses = [c.get("/v1/documents").status_code for _ in range(3)]
        refused = c.get("/v1/documents")
        assert statuses == [200, 200, 200] and refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 2
        assert refused.headers["ratelimit-policy"] == '"requests";q=3'
        assert refused.headers["ratelimit"].startswith('"requests";r=0;t=')
        assert "CITELINE_KEY_RATE_LIMIT" in refused.json()["detail"]
        with keyed.client(other) as c2:  # per key: another key is not affected
            assert c2.get("/v1/documents").status_code == 200
        with keyed.admin() as admin:  # nor is the operator
            assert all(admin.get("/v1/keys").status_code == 200 for _ in range(5))
        started = time.monotonic()
        wait_until(lambda: c.get("/v1/documents").status_code == 200, timeout=10, interval=0.25)
        assert time.monotonic() - started <= wait + 1.5  # recovers when Retry-After said


@pytest.fixture
def slow_llm() -> Iterator[StubServer]:
    reply = " ".join(f"word{i}" for i in range(200)) + " [1]."
    with StubServer(reply=reply, chunk_interval=0.05) as stub:
        yield stub


def _llm_keyed(make_server: Any, stub: StubServer, **settings: Any) -> Keyed:
    live = make_server(
        admin_api_key=ADMIN_KEY, llm_provider="openai", llm_base_url=stub.base_url,
        llm_api_key="k", llm_model="stub-chat", **settings,
    )  # fmt: skip
    return Keyed(live)


def test_streams_per_key_are_capped(make_server: Any, slow_llm: StubServer) -> None:
    keyed = _llm_keyed(make_server, slow_llm, max_streams_per_key=1)
    key = keyed.mint()["key"]
    keyed.index(key, text="Etna is the most active volcano in Sicily.")
    body = {"question": "Which volcano in Sicily is most active?", "stream": True}
    with httpx.Client(base_url=keyed.live.url, headers=bearer(key), timeout=30) as c:
        with c.stream("POST", "/v1/query", json=body) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)
            second = c.post("/v1/query", json=body)
            assert second.status_code == 429 and "CITELINE_MAX_STREAMS_PER_KEY" in second.text
            assert second.headers["ratelimit-policy"] == '"streams";q=1'
            assert c.post("/v1/query", json={**body, "stream": False}).status_code == 200
        # The slot comes back once the first stream is gone (closed by the client).

        def opens() -> bool:
            with c.stream("POST", "/v1/stream", json={"question": body["question"]}) as again:
                return again.status_code == 200

        wait_until(opens, timeout=15, interval=0.1)


def test_the_token_budget_answers_429(make_server: Any) -> None:
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY, tenant_token_limit="15 per day"))
    key = keyed.mint(tenant="thrifty")["key"]
    keyed.index(key, text="Mount Etna is an active volcano on the east coast of Sicily.")
    with keyed.client(key) as c:
        first = c.post("/v1/query", json={"question": "Where is Mount Etna?"})
        assert first.status_code == 200 and first.json()["tokens_used"] > 15
        r = c.post("/v1/query", json={"question": "Where is Mount Etna?"})
        assert r.status_code == 429 and "CITELINE_TENANT_TOKEN_LIMIT" in r.json()["detail"]
        assert int(r.headers["retry-after"]) > 3600  # the day's window
        assert c.post("/v1/search", json={"query": "Etna"}).status_code == 200  # no model
        usage = c.get("/v1/usage").json()
        assert usage["tokens"] >= first.json()["tokens_used"] and usage["tokens_left"] == 0
    other = keyed.mint(tenant="other")["key"]
    with keyed.client(other) as c:  # the budget is the tenant's
        assert c.post("/v1/query", json={"question": "Where is Mount Etna?"}).status_code == 200


def test_storage_quota_says_which_limit(make_server: Any) -> None:
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY, tenant_max_bytes=120))
    key = keyed.mint()["key"]
    with keyed.client(key) as c:
        assert c.post("/v1/documents", json={"text": "a" * 100}).status_code == 202
        r = c.post("/v1/documents", json={"text": "b" * 30})
        assert r.status_code == 413 and "CITELINE_TENANT_MAX_BYTES" in r.json()["detail"]
    with keyed.client(keyed.mint(tenant="roomy")["key"]) as c:
        assert c.post("/v1/documents", json={"text": "b" * 30}).status_code == 202

    chunky = Keyed(make_server(admin_api_key=ADMIN_KEY, tenant_max_chunks=1))
    key = chunky.mint()["key"]
    chunky.index(key, text="One chunk of text.")
    with chunky.client(key) as c:
        refused = wait_until(
            lambda: (r := c.post("/v1/documents", json={"text": "Two."})).status_code == 413 and r,
            timeout=10,
            interval=0.2,
        )
        assert "CITELINE_TENANT_MAX_CHUNKS" in refused.json()["detail"]


def test_usage_reports_the_callers_tenant(make_server: Any) -> None:
    keyed = Keyed(make_server(admin_api_key=ADMIN_KEY))
    acme, globex = keyed.mint(tenant="acme")["key"], keyed.mint(tenant="globex")["key"]
    keyed.index(acme, text="Acme builds rockets.")
    with keyed.client(acme) as c:
        c.post("/v1/query", json={"question": "What does Acme build?"})
        mine = c.get("/v1/usage").json()
        assert mine["tenant"] == "acme" and mine["documents"] == 1 and mine["chunks"] == 1
        assert mine["bytes"] == len(b"Acme builds rockets.") and mine["requests"] >= 3
        assert mine["tokens"] > 0
        assert c.get("/v1/usage", params={"tenant": "globex"}).status_code == 403
    with keyed.client(globex) as c:
        theirs = c.get("/v1/usage").json()
        assert theirs["tenant"] == "globex" and theirs["documents"] == 0 and theirs["tokens"] == 0
    with keyed.admin() as c:
        assert c.get("/v1/usage", params={"tenant": "acme"}).json()["documents"] == 1


def test_an_abandoned_run_is_stopped(make_server: Any, slow_llm: StubServer) -> None:
    """The client drops and never comes back: after the grace time the run stops and the LLM
    request is closed, so it cannot spend the budget to its end."""
    keyed = _llm_keyed(make_server, slow_llm, run_abandon_s=1)
    key = keyed.mint()["key"]
    keyed.index(key, text="Etna is the most active volcano in Sicily.")
    with (
        httpx.Client(base_url=keyed.live.url, headers=bearer(key), timeout=30) as c,
        c.stream("POST", "/api/chat", json={"id": "gone", "messages": [USER]}) as r,
    ):
        for line in r.iter_lines():
            if "text-delta" in line:
                break
    started = time.monotonic()
    slow_llm.wait_until(
        lambda reqs: any(q.disconnected_at is not None for q in reqs if "chat" in q.path),
        timeout=10,
    )
    assert time.monotonic() - started < 5  # 200 words at 50 ms would take 10 s
    chat = [q for q in slow_llm.requests() if "chat" in q.path][-1]
    assert not chat.completed and chat.chunks_sent < 150
