"""/metrics (names, bounded labels, the token), admission under overload, and log context."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.telemetry.logs import JsonFormatter
from tests.conftest import wait_until
from tests.integration.corpus import post_all
from tests.stubs.openai_stub import StubServer


def scrape(live: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    with live.client() as c:
        r = c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_name_what_happened_with_route_templates(server: Any) -> None:
    before = scrape(server)
    post_all(server)
    with server.client() as c:
        job = c.post("/v1/documents", json={"text": "Basalt is a volcanic rock."}).json()
        server.wait_job(job["job_id"])
        for _ in range(3):
            c.get(f"/v1/jobs/{job['job_id']}")
        c.get("/v1/jobs/job_000000000000000000000000")  # 404
        assert c.post("/v1/search", json={"query": "volcano"}).status_code == 200
        assert c.post("/v1/query", json={"question": "Where is Etna?"}).status_code == 200
        c.get("/no/such/path")
    after = scrape(server)
    route = {"method": "GET", "route": "/v1/jobs/{job_id}"}
    assert value(after, "http_request_duration_seconds_count", **route, status="200") >= 3
    assert value(after, "http_request_duration_seconds_count", **route, status="404") >= 1
    assert value(after, "http_request_duration_seconds_count", method="GET", route="unmatched",
                 status="404") >= 1  # fmt: skip
    paths = {dict(labels).get("route") for (_, labels) in after}
    assert not [p for p in paths if p and "/job_" in p], "a raw path became a label"
    grew = value(after, "citeline_chunks_indexed_total", tenant="-") - value(
        before, "citeline_chunks_indexed_total", tenant="-"
    )
    assert grew >= 4  # three corpus documents and one more, a chunk each at least
    assert value(after, "citeline_jobs_finished_total", status="completed") >= 4
    assert value(after, "citeline_jobs", status="completed") >= 4
    assert value(after, "citeline_queue_depth", queue="index") == 0
    for stage in ("chunk", "embed", "upsert"):
        assert value(after, "citeline_ingest_stage_seconds_count", stage=stage) >= 1
    assert value(after, "citeline_retrieval_seconds_count", mode="bm25") >= 2
    assert ("citeline_pipeline_backlog", (("stage", "chunk"),)) in after
    assert value(after, "citeline_active_streams", format="sse") == 0


def test_llm_metrics_count_tokens_ttft_and_errors_by_kind(make_server: Any) -> None:
    with StubServer() as stub:
        live = make_server(
            llm_provider="openai", llm_base_url=stub.base_url, llm_model="stub-chat",
            llm_max_retries=0, llm_rewrite_questions=False,
        )  # fmt: skip
        post_all(live)
        before = scrape(live)
        with live.client() as c:
            assert c.post("/v1/query", json={"question": "Where is Etna?"}).status_code == 200
            stub.faults.rate_limit(1, retry_after=0)
            assert c.post("/v1/query", json={"question": "Where is Etna?"}).status_code == 503
            stub.faults.server_error(1)
            assert c.post("/v1/query", json={"question": "Where is Etna?"}).status_code == 503
        after = scrape(live)
    model = {"provider": "openai", "model": "stub-chat"}

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("citeline_llm_time_to_first_token_seconds_count", **model) == 1
    assert grew("citeline_llm_tokens_total", **model, kind="prompt") > 0
    assert grew("citeline_llm_tokens_total", **model, kind="completion") > 0
    assert grew("citeline_llm_errors_total", **model, kind="429") == 1
    assert grew("citeline_llm_errors_total", **model, kind="5xx") == 1


def test_metrics_token_and_admin_routes(make_server: Any) -> None:
    open_server = make_server()
    with open_server.client() as c:
        refused = c.post("/v1/admin/backup")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "CITELINE_METRICS_TOKEN" in refused.json()["detail"]

    guarded = make_server(metrics_token="s3cret-token")
    with guarded.client() as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            r = c.get("/metrics", headers=headers)
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["status"] == 401
            assert "s3cret" not in r.text
    assert scrape(guarded, Authorization="Bearer s3cret-token")


@pytest.fixture
def slow_stub() -> Iterator[StubServer]:
    with StubServer(reply="Etna is in Sicily [1]. " + "It erupts often. " * 40,
                    chunk_interval=0.02) as stub:  # fmt: skip
        yield stub


def test_overload_gets_503_with_retry_after_at_once_then_recovers(
    make_server: Any, slow_stub: StubServer
) -> None:
    live = make_server(
        llm_provider="openai", llm_base_url=slow_stub.base_url, llm_model="stub-chat",
        llm_rewrite_questions=False, max_inflight_answers=2,
    )  # fmt: skip
    post_all(live)
    body = {"question": "Where is Etna?", "stream": True}
    done: list[int] = []

    def hold() -> None:
        with (
            httpx.Client(base_url=live.url, timeout=30) as c,
            c.stream("POST", "/v1/query", json=body) as r,
        ):
            done.append(r.status_code)
            r.read()

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    wait_until(lambda: len(done) == 2)
    with live.client() as c:
        started = time.perf_counter()
        refused = c.post("/v1/query", json=body)
        took = time.perf_counter() - started
        other_kind = c.post("/v1/search", json={"query": "Etna"})  # its own limit: not full
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert "too many answer requests" in refused.json()["detail"]
    assert took < 0.5, f"the refusal took {took:.3f} s"
    assert other_kind.status_code == 200
    for t in holders:
        t.join(30)
    assert done == [200, 200]
    with live.client() as c:  # the slots are free again
        assert c.post("/v1/query", json={"question": "Where is Etna?"}).status_code == 200
    samples = scrape(live)
    assert value(samples, "citeline_http_rejected_total", kind="answer", reason="overload") >= 1
    assert value(samples, "citeline_http_requests_inflight", kind="answer") == 0


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("citeline")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_every_line_carries_its_context(make_server: Any, log_lines: Lines) -> None:
    with StubServer(dimension=16) as stub:
        server = make_server(
            embedding_base_url=stub.base_url, embedding_model="stub-embed",
            embedding_dimension=16, embedding_max_retries=0,
        )  # fmt: skip
        with server.client() as c:
            r = c.post("/v1/search", json={"query": "volcano", "collection": "geo"},
                       headers={"X-Request-ID": "client-id-1"})  # fmt: skip
            assert r.status_code == 200
            stub.faults.bad_request(100, endpoint="embeddings")  # every document is refused
            posted = c.post("/v1/documents", json={"text": "Basalt.", "collection": "rocks"})
            job = server.wait_job(posted.json()["job_id"])
    assert job["status"] == "failed"
    closed = [x for x in log_lines.lines if x["event"] == "job.closed"]
    assert closed and closed[0]["job_id"] == job["job_id"]
    assert closed[0]["collection"] == "rocks" and closed[0]["tenant"] == "default"
    assert "embedding failed" in closed[0]["error"] and closed[0]["level"] == "warning"
    access = [
        x for x in log_lines.lines if x["event"] == "http.request" and x["route"] == "/v1/search"
    ]
    assert access and access[0]["request_id"] == "client-id-1"
    assert access[0]["tenant"] == "default" and access[0]["collection"] == "geo"
    assert access[0]["status"] == 200 and access[0]["duration_ms"] > 0
    assert access[0]["level"] == "info" and access[0]["logger"] == "citeline.http"
