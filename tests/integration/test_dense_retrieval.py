"""Dense + BM25 hybrid retrieval against the OpenAI-compatible stub on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service.store.base import Scope
from tests.stubs.openai_stub import StubServer

DIM = 32


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


@pytest.fixture
def hybrid(make_server: Any, stub: StubServer) -> Any:
    return make_server(
        embedding_base_url=stub.base_url,
        embedding_model="stub-embed",
        embedding_dimension=DIM,
        embedding_max_retries=2,
    )


def embedding_calls(stub: StubServer) -> list[Any]:
    return [r for r in stub.requests() if r.path.endswith("/embeddings")]


def test_dense_leg_finds_what_bm25_cannot(hybrid: Any, stub: StubServer) -> None:
    """A text of stopwords only has an empty BM25 vector: only the dense leg can find it."""
    hybrid.index(id="hamlet", text="To be or not to be")
    hybrid.index(id="etna", text="Mount Etna is an active volcano in Sicily.")
    with hybrid.client() as c:
        hits = c.post("/v1/search", json={"query": "To be or not to be"}).json()["results"]
        lava = c.post("/v1/search", json={"query": "active volcano Sicily"}).json()["results"]
    assert hits[0]["document_id"] == "hamlet"
    assert lava[0]["document_id"] == "etna"
    assert len(embedding_calls(stub)) >= 4  # two documents, two queries


def test_refused_input_fails_the_job_with_the_reason(hybrid: Any, stub: StubServer) -> None:
    stub.faults.bad_request(1, endpoint="embeddings")
    with hybrid.client() as c:
        r = c.post("/v1/documents", json={"id": "bad", "text": "Refused text."})
    job_id = r.json()["job_id"]
    job = hybrid.wait_job(job_id)
    assert job["status"] == "failed" and "embedding" in job["error"]
    assert len(embedding_calls(stub)) == 1
    assert hybrid.runtime.store.chunk_ids(Scope("default", "default"), "bad") == []


def test_rate_limits_are_retried_then_indexed(hybrid: Any, stub: StubServer) -> None:
    stub.faults.rate_limit(2, retry_after=0.05, endpoint="embeddings")
    job = hybrid.index(id="slow", text="Glaciers carve valleys over centuries.")
    assert job["status"] == "queued"
    statuses = [r.status for r in embedding_calls(stub)]
    assert statuses == [429, 429, 200]
