"""Dense + BM25 hybrid retrieval against the OpenAI-compatible stub on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.runtime import Runtime
from service.store import naming
from service.store.base import Scope
from service.tokens import count_tokens
from tests.conftest import stop_server, wait_until
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


# -- malformed vectors and model changes --------------------------------------------------------

SCOPE = Scope("default", "default")
# ~1,000 words: with 64-token chunks and two chunks per embedding request, several requests.
LONG_TEXT = " ".join(f"Basalt column {i} cooled slowly into hexagonal prisms." for i in range(120))


def break_request(stub: StubServer, fault: str, nth: int) -> None:
    """Make the `nth` embeddings request (1-based) return `fault`; earlier ones stay valid.

    Each request takes one fault of each kind, in the order they were added, so harmless ones
    of the same kind (the right dimension, a finite value) use up the requests before.
    """
    for _ in range(nth - 1):
        if fault == "wrong_dimensions":
            stub.faults.wrong_dimensions(DIM, n=1)
        else:
            stub.faults.nan_values(n=1, value=0.5)
    if fault == "wrong_dimensions":
        stub.faults.wrong_dimensions(DIM + 5, n=1)
    else:
        stub.faults.nan_values(n=1)


@pytest.mark.parametrize("nth", [1, 3], ids=["first-request", "after-two-good-requests"])
@pytest.mark.parametrize(
    ("fault", "reason"),
    [("wrong_dimensions", f"{DIM + 5}-dimensional vector"), ("nan_values", "NaN or infinite")],
)
def test_malformed_vectors_fail_the_job_with_no_points(
    make_server: Any, stub: StubServer, fault: str, reason: str, nth: int
) -> None:
    live = make_server(
        embedding_base_url=stub.base_url,
        embedding_model="stub-embed",
        embedding_dimension=DIM,
        embed_batch_size=2,
    )
    break_request(stub, fault, nth)
    chunking = {"max_chunk_size_tokens": 64, "chunk_overlap_tokens": 0}
    with live.client() as c:
        r = c.post("/v1/documents", json={"id": "bad", "text": LONG_TEXT, "chunking": chunking})
    job = live.wait_job(r.json()["job_id"])
    assert job["status"] == "failed" and reason in job["error"], job
    assert len(embedding_calls(stub)) == nth  # permanent: not retried, later batches dropped
    # Chunks of the good batches before it may have been written; the failure removes them
    # right after it is recorded.
    wait_until(lambda: live.runtime.store.chunk_ids(SCOPE, "bad") == [], timeout=10)
    assert live.runtime.store.chunk_ids(SCOPE) == []

    stub.faults.clear()
    live.index(id="good", text="Obsidian is volcanic glass.")  # the pipeline carries on
    with live.client() as c:
        hits = c.post("/v1/search", json={"query": "Basalt column"}).json()["results"]
    assert {h["document_id"] for h in hits} <= {"good"}


def test_each_model_has_its_own_collection(
    make_server: Any, stub: StubServer, tmp_path: Path
) -> None:
    data = tmp_path / "shared"

    def start(model: str) -> Any:
        return make_server(
            data_dir=data,
            embedding_base_url=stub.base_url,
            embedding_model=model,
            embedding_dimension=DIM,
        )

    first = start("stub-embed")
    first.index(id="etna", text="Mount Etna is an active volcano in Sicily.")
    stop_server(first)
    second = start("stub-embed-v2")  # the same data directory, another model
    assert second.runtime.store.chunk_ids(SCOPE) == []  # none of the first model's vectors
    second.index(id="hekla", text="Hekla is a volcano in Iceland.")
    stop_server(second)
    third = start("stub-embed")
    assert len(third.runtime.store.chunk_ids(SCOPE, "etna")) == 1
    assert third.runtime.store.chunk_ids(SCOPE, "hekla") == []
    shards = sorted(p.name for p in (data / "qdrant-edge").iterdir() if p.is_dir())
    slugs = [naming.slug(m, DIM) for m in ("stub-embed", "stub-embed-v2")]
    assert shards == sorted(slugs)


def test_a_collection_recorded_for_another_model_is_refused_at_start(
    make_server: Any, stub: StubServer, tmp_path: Path
) -> None:
    data = tmp_path / "moved"
    first = make_server(
        data_dir=data, embedding_base_url=stub.base_url, embedding_model="stub-embed",
        embedding_dimension=DIM,
    )  # fmt: skip
    first.index(id="etna", text="Mount Etna is an active volcano in Sicily.")
    stop_server(first)
    mine, theirs = (naming.EmbeddingRecord(m, DIM) for m in ("stub-embed", "stub-embed-v2"))
    naming.edge_shard_path(data, mine).rename(naming.edge_shard_path(data, theirs))
    settings = Settings(
        data_dir=data, embedding_base_url=stub.base_url, embedding_model="stub-embed-v2",
        embedding_dimension=DIM,
    )  # fmt: skip
    with pytest.raises(naming.EmbeddingMismatchError) as err:
        asyncio.run(Runtime.start(settings))
    assert f"'stub-embed' ({DIM} dimensions)" in str(err.value)
    assert "CITELINE_EMBEDDING_MODEL" in str(err.value)


def test_jobs_account_embedding_tokens_and_cost(make_server: Any, stub: StubServer) -> None:
    live = make_server(
        embedding_base_url=stub.base_url,
        embedding_model="stub-embed",
        embedding_dimension=DIM,
        model_prices={"stub-embed": {"embedding": 0.5}},
    )
    text = "Glaciers carve valleys over centuries. " * 20  # one chunk
    accepted = live.index(id="priced", text=text)
    with live.client() as c:
        job = c.get(f"/v1/jobs/{accepted['job_id']}").json()
    assert job["chunks_total"] == 1
    assert job["embedding_tokens"] == count_tokens(text.strip())
    assert job["cost_usd"] == pytest.approx(job["embedding_tokens"] * 0.5 / 1e6)


def test_bm25_only_jobs_spend_no_embedding_tokens(server: Any) -> None:
    accepted = server.index(id="free", text="Sourdough rises slowly.")
    with server.client() as c:
        job = c.get(f"/v1/jobs/{accepted['job_id']}").json()
    assert job["embedding_tokens"] == 0 and job["cost_usd"] == 0.0
