"""Failure handling on arq: transient errors retry with backoff inside the budget, permanent
ones fail at once with the reason, an exhausted budget ends failed, a lost job is found."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from service.catalog.base import NewDocument
from service.jobs.arq_queue import reconcile
from tests.conftest import wait_until
from tests.integration.workers.helpers import SCOPE, scaled_server
from tests.redis_server import RedisServer
from tests.stubs.openai_stub import StubServer

DIM = 16


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


@pytest.fixture
def live(redis_server: RedisServer, make_server: Any, stub: StubServer) -> Any:
    # No retries inside the SDK or the pipeline: every retry here is an arq Retry.
    return scaled_server(
        make_server,
        redis_server.url,
        embedding_base_url=stub.base_url,
        embedding_model="stub-embed",
        embedding_dimension=DIM,
        embedding_max_retries=0,
        embed_retry_budget_s=0,
        job_max_tries=3,
    )


def embedding_calls(stub: StubServer) -> list[Any]:
    return [r for r in stub.requests() if r.path.endswith("/embeddings")]


def post(live: Any, **doc: Any) -> str:
    with live.client() as c:
        r = c.post("/v1/documents", json=doc)
    assert r.status_code == 202, r.text
    job_id: str = r.json()["job_id"]
    return job_id


def test_429_twice_is_retried_after_retry_after_then_indexed(live: Any, stub: StubServer) -> None:
    stub.faults.rate_limit(2, retry_after=1, endpoint="embeddings")
    job = live.wait_job(post(live, id="slow", text="Glaciers carve valleys over centuries."))
    assert (job["status"], job["tries"], job["error"]) == ("completed", 3, None)
    calls = embedding_calls(stub)
    assert [r.status for r in calls] == [429, 429, 200]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.95, f"Retry-After: 1 was not honoured: {gaps}"
    assert len(live.runtime.store.chunk_ids(SCOPE, "slow")) == 1


def test_400_fails_at_once_with_the_reason(live: Any, stub: StubServer) -> None:
    stub.faults.bad_request(1, endpoint="embeddings")
    job = live.wait_job(post(live, id="bad", text="Refused text."))
    assert (job["status"], job["tries"]) == ("failed", 1)
    assert "HTTP 400" in job["error"]
    assert len(embedding_calls(stub)) == 1
    assert live.runtime.store.chunk_ids(SCOPE, "bad") == []


def test_a_job_out_of_tries_ends_failed_with_the_last_reason(live: Any, stub: StubServer) -> None:
    stub.faults.server_error(100, endpoint="embeddings")
    job = live.wait_job(post(live, id="down", text="The embedder is down."), timeout=60)
    assert (job["status"], job["tries"]) == ("failed", 3)
    assert job["error"].startswith("gave up after 3 tries") and "HTTP 500" in job["error"]
    assert len(embedding_calls(stub)) == 3
    stub.faults.clear()  # posting it again is a new attempt with a fresh budget
    again = live.wait_job(post(live, id="down", text="The embedder is down."))
    assert (again["job_id"], again["status"], again["tries"]) == (job["job_id"], "completed", 1)


def test_a_job_arq_never_got_is_found_and_run(live: Any, redis_server: RedisServer) -> None:
    """The API died between recording a job and enqueueing it: `reconcile` enqueues it."""
    doc = NewDocument(SCOPE, "lost", "A job nobody enqueued.", None, None, {}, 64, 0)
    (accepted,) = live.run_on_loop(live.runtime.registry.accept([doc]))
    client = redis_server.client()
    assert not client.exists(f"arq:job:{accepted.job_id}")
    found = live.run_on_loop(reconcile(live.runtime.queue.redis, grace_s=0))
    assert found == [accepted.job_id]
    job = live.wait_job(accepted.job_id)
    assert (job["status"], job["tries"]) == ("completed", 1)
    wait_until(lambda: not client.exists(f"arq:job:{accepted.job_id}"), timeout=10)
    assert live.run_on_loop(reconcile(live.runtime.queue.redis, grace_s=0)) == []
