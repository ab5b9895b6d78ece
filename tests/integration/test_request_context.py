"""Every response carries X-Request-ID (a client's well-formed one is kept) and X-Response-Time;
an error body names the same id."""

from __future__ import annotations

import re
from typing import Any

import pytest


def test_each_response_gets_its_own_id_and_a_time(server: Any) -> None:
    with server.client() as c:
        a, b = c.get("/healthz"), c.get("/healthz")
    assert re.fullmatch(r"req_[0-9a-f]{16}", a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    assert re.fullmatch(r"\d+\.\dms", a.headers["x-response-time"])


@pytest.mark.parametrize(
    ("given", "kept"),
    [("trace-42.a:b_c", True), ("has space", False), ("x" * 129, False), ("", False)],
)
def test_a_well_formed_client_id_is_kept(server: Any, given: str, kept: bool) -> None:
    with server.client() as c:
        r = c.get("/healthz", headers={"x-request-id": given})
    assert (r.headers["x-request-id"] == given) is kept


def test_problem_bodies_and_streams_carry_the_id(server: Any) -> None:
    with server.client() as c:
        missing = c.get("/v1/documents/nope", headers={"x-request-id": "abc-1"})
        with c.stream("POST", "/v1/query", json={"question": "q", "stream": True}) as r:
            streamed = r.headers["x-request-id"]
    assert missing.status_code == 404 and missing.json()["request_id"] == "abc-1"
    assert missing.headers["x-request-id"] == "abc-1"
    assert streamed.startswith("req_")
