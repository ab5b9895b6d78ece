"""Nothing an upstream says reaches a client: not its error body (which may quote the
operator's key or a vendor URL), not an internal host, port or path. Clients get a fixed
message per class and a request id; the server log has the detail under that id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.integration.corpus import post_all
from tests.integration.security.helpers import capture_json_logs, json_lines
from tests.stubs.openai_stub import StubServer, closed_port_url

SECRET = "sk-live-TOPSECRET0123456789"
LEAKY = (
    f"Incorrect API key provided: {SECRET}. Find your key at https://vendor.example/account; "
    "upstream gw-internal.corp (10.0.3.7:58443) /srv/gateway/secrets.py"
)
# Random ids (hex) in a stream could contain a bare port number: look for it with its colon.
LEAKS = (SECRET, "TOPSECRET", "vendor.example", "gw-internal", "10.0.3.7", ":58443", "/srv/gateway")
USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Which volcano?"}]}


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(chunk_interval=0.0) as s:
        yield s


def _llm_server(make_server: Any, base_url: str) -> Any:
    live = make_server(
        llm_provider="openai",
        llm_base_url=base_url,
        llm_api_key="operator-key-must-not-leak",
        llm_model="stub-chat",
        llm_max_retries=0,
        llm_timeout_s=2,
        llm_deadline_s=2,
    )
    post_all(live)
    return live


def _requests(c: httpx.Client) -> Iterator[tuple[str, httpx.Response]]:
    question = {"question": "Which volcano in Sicily is most active?"}
    completion = {"model": "citeline", "messages": [{"role": "user", "content": "Which volcano?"}]}
    yield "query", c.post("/v1/query", json=question)
    yield "query stream", c.post("/v1/query", json={**question, "stream": True})
    yield "stream", c.post("/v1/stream", json=question)
    yield "chat ui", c.post("/api/chat", json={"id": "c1", "messages": [USER]})
    yield "chat v4", c.post("/api/chat?protocol=data", json={"messages": [USER]})
    yield "completions", c.post("/v1/chat/completions", json=completion)
    yield "completions stream", c.post("/v1/chat/completions", json={**completion, "stream": True})


def _no_leak(where: str, r: httpx.Response, also: tuple[str, ...] = ()) -> None:
    text = r.text + str(r.headers)
    for leak in (*LEAKS, "operator-key-must-not-leak", *also):
        assert leak not in text, (where, leak, text[:2000])


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    capture_json_logs(caplog)  # the server's own log lines, with their request id
    return caplog


@pytest.mark.parametrize("status", [401, 403, 404, 400, 500, 503])
def test_upstream_error_bodies_reach_no_client(
    make_server: Any, stub: StubServer, log_records: pytest.LogCaptureFixture, status: int
) -> None:
    live = _llm_server(make_server, stub.base_url)
    stub.faults.error(status, n=1000, endpoint="chat", message=LEAKY)
    stub_host = stub.base_url.split("//")[1].split("/")[0]
    with live.client() as c:
        for where, r in _requests(c):
            _no_leak(where, r, also=(stub_host,))
            if r.headers["content-type"] == "application/problem+json":
                body = r.json()
                expected = 503 if status >= 500 else 502  # an auth failure is the LLM's, not ours
                assert r.status_code == expected, (where, r.text)
                assert body["request_id"] == r.headers["x-request-id"]
                assert "language model" in body["detail"] and body["request_id"] in body["detail"]
            else:  # a stream that had started: the error is in-band, just as clean
                assert r.status_code == 200 and "language model" in r.text, (where, r.text)
    rid = r.headers["x-request-id"]
    logged = [line for line in json_lines(log_records) if line.get("request_id") == rid]
    assert any(SECRET in str(line.get("detail", "")) for line in logged), "no detail logged"


def test_an_unreachable_llm_names_no_host_or_port(make_server: Any) -> None:
    url = closed_port_url()
    live = _llm_server(make_server, url)
    port = url.split(":")[-1].split("/")[0]
    with live.client() as c:
        for where, r in _requests(c):
            _no_leak(where, r, also=(f"127.0.0.1:{port}", f":{port}"))
            assert r.status_code in (200, 503), (where, r.text)


def test_job_errors_carry_no_upstream_body(make_server: Any, stub: StubServer) -> None:
    live = make_server(
        embedding_base_url=stub.base_url,
        embedding_model="stub-embed",
        embedding_api_key="operator-key-must-not-leak",
        embedding_dimension=384,
        embedding_max_retries=0,
    )
    stub.faults.error(400, n=1000, endpoint="embeddings", message=LEAKY)
    with live.client() as c:
        r = c.post("/v1/documents", json={"text": "Mount Etna is in Sicily."})
        job_id = r.json()["job_id"]
        job = wait_until(
            lambda: (j := c.get(f"/v1/jobs/{job_id}").json())["status"] == "failed" and j
        )
        assert "HTTP 400" in job["error"], job
        _no_leak("job", c.get(f"/v1/jobs/{job_id}"))
        stub.faults.clear()
        stub.faults.error(401, n=1000, endpoint="embeddings", message=LEAKY)
        r = c.post("/v1/search", json={"query": "volcano"})  # the query's embedding fails
        assert r.status_code == 502 and r.headers["content-type"] == "application/problem+json"
        _no_leak("search", r)
