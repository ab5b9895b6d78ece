"""A Redis that stops answering (SIGSTOP): writes get a prompt 503, queries keep answering,
and everything works again once Redis is back."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import wait_until
from tests.integration.corpus import DOCS, post_all
from tests.integration.workers.helpers import scaled_server
from tests.redis_server import RedisServer


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = fn(*args, **kwargs)
    return response, time.monotonic() - started


def test_stalled_redis_gives_503_within_2s_and_queries_keep_answering(
    redis_server: RedisServer, make_server: Any
) -> None:
    live = scaled_server(make_server, redis_server.url)
    post_all(live, DOCS)
    question = {"question": "Where is Mount Etna?"}
    with httpx.Client(base_url=live.url, timeout=10) as c:
        job_id = c.get("/v1/documents/volcano").json()["job_id"]
        assert c.post("/v1/query", json=question).json()["sources"][0]["document_id"] == "volcano"

        redis_server.stall()
        try:
            r, took = timed(c.post, "/v1/documents", json={"id": "vesuvius", "text": "Vesuvius."})
            assert r.status_code == 503 and took < 2.0, (r.status_code, took)
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["content-type"] == "application/problem+json"
            r, took = timed(c.get, f"/v1/jobs/{job_id}")
            assert r.status_code == 503 and took < 2.0, (r.status_code, took)

            for _ in range(3):  # the first one notices the stall, the next skip Redis
                r, took = timed(c.post, "/v1/query", json=question)
                assert r.status_code == 200 and took < 2.0, (r.status_code, took)
                sources = r.json()["sources"]
                assert sources[0]["document_id"] == "volcano"
                assert "[1]" in r.json()["answer"]
            r, took = timed(c.get, "/readyz")  # still serving queries: stay in the pool
            assert r.status_code == 200 and r.json()["status"] == "degraded" and took < 2.0
            r, took = timed(c.post, "/v1/search", json={"query": "volcano Sicily"})
            assert r.status_code == 200 and took < 0.5, (r.status_code, took)
            assert r.json()["results"][0]["document_id"] == "volcano"
        finally:
            redis_server.resume()

        # Back to normal: new documents are accepted and indexed (the in-process worker,
        # which lost Redis, has been restarted by its supervisor).
        def accepted_again() -> httpx.Response | None:
            r = c.post("/v1/documents", json={"id": "vesuvius", "text": "Vesuvius erupted."})
            return r if r.status_code == 202 else None

        r = wait_until(accepted_again, timeout=30, interval=0.2)
    job = live.wait_job(r.json()["job_id"], timeout=60)
    assert job["status"] == "completed"
