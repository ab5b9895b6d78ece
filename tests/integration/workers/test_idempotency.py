"""Exactly-once effect through the API: identical POSTs share one job, new versions replace
old chunks, delete then re-add starts a new generation."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from service.indexing.chunking import chunk_text
from service.store.base import point_id
from tests.conftest import wait_until
from tests.integration.workers.helpers import SCOPE, WORDS, scaled_server
from tests.redis_server import RedisServer
from tests.stubs.openai_stub import StubServer

DIM = 16


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


def text(tag: str, sentences: int) -> str:
    return " ".join(f"{WORDS[k % 10]} {tag} sentence {k}." for k in range(sentences))


def expected_ids(job: dict[str, Any], doc_text: str) -> list[str]:
    n = len(chunk_text(doc_text, 64, 0))
    assert job["chunks_total"] == n
    return sorted(point_id(SCOPE, job["document_id"], job["version"], i) for i in range(n))


def test_ten_concurrent_identical_posts_make_one_job(
    redis_server: RedisServer, make_server: Any, stub: StubServer
) -> None:
    stub.faults.stall(0.3, endpoint="embeddings")  # the job is still running while POSTs land
    live = scaled_server(
        make_server,
        redis_server.url,
        embedding_base_url=stub.base_url,
        embedding_model="stub-embed",
        embedding_dimension=DIM,
    )
    chunking = {"max_chunk_size_tokens": 64, "chunk_overlap_tokens": 0}
    doc = {"id": "etna", "text": text("etna", 80), "chunking": chunking}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{live.url}/v1/documents", json=doc, timeout=10)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))
    assert [r.status_code for r in responses] == [202] * 10
    bodies = [r.json() for r in responses]
    assert len({b["job_id"] for b in bodies}) == 1
    assert sorted(b["duplicate"] for b in bodies) == [False] + [True] * 9
    job = live.wait_job(bodies[0]["job_id"])
    assert (job["status"], job["tries"]) == ("completed", 1)
    # Posting it again once it is done still finds the same job and runs nothing.
    again = post(0).json()
    assert (again["job_id"], again["duplicate"], again["status"]) == (
        job["job_id"],
        True,
        "completed",
    )

    worker = live.runtime.queue.worker.worker  # the in-process arq worker
    wait_until(lambda: worker.jobs_complete >= 1, timeout=10)
    assert (worker.jobs_complete, worker.jobs_retried, worker.jobs_failed) == (1, 0, 0)
    assert redis_server.client().zcard("citeline:index") == 0
    stored = live.runtime.store.chunk_ids(SCOPE, "etna")
    assert sorted(stored) == expected_ids(job, doc["text"])


def test_a_new_version_replaces_every_chunk_and_delete_then_readd_is_a_new_job(
    redis_server: RedisServer, make_server: Any
) -> None:
    live = scaled_server(make_server, redis_server.url)
    chunking = {"max_chunk_size_tokens": 64, "chunk_overlap_tokens": 0}
    v1, v2 = text("first", 120), text("second", 40)
    first = live.index(id="doc", text=v1, chunking=chunking)
    with live.client() as c:
        job1 = c.get(f"/v1/jobs/{first['job_id']}").json()
        assert sorted(live.runtime.store.chunk_ids(SCOPE, "doc")) == expected_ids(job1, v1)

        second = live.index(id="doc", text=v2, chunking=chunking)
        job2 = c.get(f"/v1/jobs/{second['job_id']}").json()
        assert second["job_id"] != first["job_id"] and not second["duplicate"]
        assert job2["chunks_total"] < job1["chunks_total"]
        assert sorted(live.runtime.store.chunk_ids(SCOPE, "doc")) == expected_ids(job2, v2)
        document = c.get("/v1/documents/doc").json()
        assert (document["version"], document["chunks"]) == (job2["version"], job2["chunks_total"])
        hits = c.post("/v1/search", json={"query": "first sentence", "max_results": 20}).json()
        assert {h["text"].count("first") for h in hits["results"]} <= {0}

        assert c.delete("/v1/documents/doc").status_code == 200
        assert live.runtime.store.chunk_ids(SCOPE, "doc") == []
        assert c.get("/v1/documents/doc").status_code == 404
        third = live.index(id="doc", text=v2, chunking=chunking)
    assert third["job_id"] not in (first["job_id"], second["job_id"])
    assert third["version"] == second["version"] and not third["duplicate"]
    assert sorted(live.runtime.store.chunk_ids(SCOPE, "doc")) == expected_ids(job2, v2)


def test_documents_page_through_the_redis_registry(
    redis_server: RedisServer, make_server: Any
) -> None:
    live = scaled_server(make_server, redis_server.url)
    for name in ("b", "a", "c:1"):
        live.index(id=name, text=text(name, 5), metadata={"name": name})
    with live.client() as c:
        first = c.get("/v1/documents", params={"limit": 2}).json()
        assert [d["document_id"] for d in first["documents"]] == ["a", "b"]
        assert first["documents"][0]["metadata"] == {"name": "a"}
        assert first["documents"][0]["state"] == "indexed"
        rest = c.get("/v1/documents", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [d["document_id"] for d in rest["documents"]] == ["c:1"]
        assert rest["next_cursor"] is None
        assert c.get("/readyz").json()["jobs"] == {"completed": 3}
