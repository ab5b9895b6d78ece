"""Bad input gets RFC 9457 problem+json with a 4xx, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"]
    assert "Traceback" not in r.text
    return body


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        ("/v1/documents", {"text": "x", "surprise": 1}, "surprise"),
        ("/v1/documents", {"text": ""}, "text"),
        ("/v1/documents", {"text": "x", "id": "bad id with spaces"}, "id"),
        (
            "/v1/documents",
            {"text": "x", "chunking": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 60}},
            "half",
        ),
        (
            "/v1/documents",
            {"text": "x", "chunking": {"max_chunk_size_tokens": 10}},
            "max_chunk_size_tokens",
        ),
        ("/v1/documents/batch", {"documents": []}, "documents"),
        ("/v1/query", {"question": "q", "max_results": 21}, "max_results"),
        (
            "/v1/search",
            {"query": "q", "filters": {"type": "gt", "key": "year", "value": "2020"}},
            "numbers",
        ),
        (
            "/v1/search",
            {"query": "q", "filters": {"type": "xor", "key": "a", "value": 1}},
            "filters",
        ),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(
    server: Any, path: str, payload: Any, needle: str
) -> None:
    with server.client() as c:
        body = assert_problem(c.post(path, json=payload), 422)
    assert needle in str(body)


def test_malformed_json_is_a_problem(server: Any) -> None:
    with server.client() as c:
        r = c.post(
            "/v1/documents", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert_problem(r, 422)


def test_body_over_limit_gets_413(make_server: Any) -> None:
    live = make_server(max_request_bytes=2048)
    with live.client() as c:
        body = assert_problem(c.post("/v1/documents", json={"text": "x" * 5000}), 413)
        # A body sent without Content-Length (chunked) is counted too.
        chunked = c.post(
            "/v1/documents",
            content=iter([b'{"text": "', b"y" * 4000, b'"}']),
            headers={"content-type": "application/json"},
        )
    assert "2048" in body["detail"]
    assert_problem(chunked, 413)


def test_unknown_things_are_404_problems(server: Any) -> None:
    with server.client() as c:
        assert_problem(c.get("/v1/nothing-here"), 404)
        assert_problem(c.get("/v1/jobs/job_000000000000000000000000"), 404)
        assert_problem(c.get("/v1/documents/missing"), 404)
        assert_problem(c.get("/v1/documents", params={"cursor": "%%%"}), 400)


def test_health_and_readiness(server: Any) -> None:
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_bad_setting_fails_at_start_naming_it(tmp_path: Any) -> None:
    env = {**os.environ, "CITELINE_CHUNK_OVERLAP_TOKENS": "400", "CITELINE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "CITELINE_CHUNK_OVERLAP_TOKENS" in proc.stderr and "Traceback" not in proc.stderr
    env = {**os.environ, "CITELINE_PORT": "eighty", "CITELINE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "CITELINE_PORT" in proc.stderr


def test_the_settings_are_the_one_source_of_every_size_limit(make_server: Any) -> None:
    """Raised limits take effect (the schema does not cap them lower); lowered ones answer 413."""
    raised = make_server(
        max_document_chars=2_500_000, max_batch_documents=1200, max_request_bytes=20_000_000
    )
    with raised.client() as c:
        big = c.post("/v1/documents", json={"text": "lava " * 480_000})  # 2.4 M characters
        assert big.status_code == 202, big.text
        many = c.post(
            "/v1/documents/batch", json={"documents": [{"text": f"d {i}"} for i in range(1100)]}
        )
        assert many.status_code == 202, many.text
        over = c.post(
            "/v1/documents/batch", json={"documents": [{"text": f"e {i}"} for i in range(1201)]}
        )
        body = assert_problem(over, 413)
        assert "CITELINE_MAX_BATCH_DOCUMENTS" in body["detail"]
    lowered = make_server(max_document_chars=100)
    with lowered.client() as c:
        body = assert_problem(c.post("/v1/documents", json={"text": "x" * 101}), 413)
        assert "CITELINE_MAX_DOCUMENT_CHARS" in body["detail"]


def test_limits_above_the_wire_caps_are_refused_at_start(tmp_path: Any) -> None:
    env = {
        **os.environ,
        "CITELINE_DATA_DIR": str(tmp_path),
        "CITELINE_MAX_BATCH_DOCUMENTS": "20000",
    }
    run = subprocess.run(
        [sys.executable, "-m", "service"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0 and "CITELINE_MAX_BATCH_DOCUMENTS" in run.stderr
    assert "Traceback" not in run.stderr
