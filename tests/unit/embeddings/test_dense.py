"""OpenAIEmbedder against the OpenAI stub over loopback HTTP (real HTTP, no mocks)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from service.embeddings.dense import (
    DenseEmbedder,
    EmbeddingError,
    OpenAIEmbedder,
    PermanentEmbeddingError,
    TransientEmbeddingError,
    _embedding_items,
)
from tests.stubs.openai_stub import StubServer, closed_port_url, stub_fixture
from tests.stubs.stub_payloads import embedding_vector

DIM = 32
openai_stub = stub_fixture(dimension=DIM)

MakeEmbedder = Callable[..., OpenAIEmbedder]


@pytest.fixture
async def make_embedder(openai_stub: StubServer) -> AsyncIterator[MakeEmbedder]:
    made: list[OpenAIEmbedder] = []

    def make(**overrides: Any) -> OpenAIEmbedder:
        options: dict[str, Any] = {
            "model": "stub-embed",
            "dimension": DIM,
            "base_url": openai_stub.base_url,
            "api_key": "test-key",
            "timeout": 5.0,
            "max_retries": 2,
            **overrides,
        }
        embedder = OpenAIEmbedder(**options)
        made.append(embedder)
        return embedder

    yield make
    for embedder in made:
        await embedder.aclose()


def expected(text: str, dimension: int = DIM) -> list[float]:
    """What the stub returns for `text`; float32 survives the base64 round trip exactly."""
    return [float(x) for x in embedding_vector(b"s:" + text.encode(), dimension).tolist()]


async def test_batches_in_order(openai_stub: StubServer, make_embedder: MakeEmbedder) -> None:
    embedder: DenseEmbedder = make_embedder(batch_size=128)
    texts = [f"chunk number {i}" for i in range(300)]

    vectors = await embedder.embed_documents(texts)

    assert len(vectors) == 300 and all(len(v) == DIM for v in vectors)
    assert vectors == [expected(t) for t in texts]
    requests = openai_stub.requests()
    assert sorted(len(r.body["input"]) for r in requests) == [44, 128, 128]
    # The SDK asks for base64 unless told otherwise, and decodes it before we see it.
    assert {r.body["encoding_format"] for r in requests} == {"base64"}
    assert "dimensions" not in requests[0].body


async def test_embed_query_and_empty_input(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    embedder = make_embedder()
    assert await embedder.embed_documents([]) == []
    assert openai_stub.requests() == []
    assert await embedder.embed_query("what is a volcano?") == expected("what is a volcano?")


async def test_send_dimensions(openai_stub: StubServer, make_embedder: MakeEmbedder) -> None:
    embedder = make_embedder(dimension=8, send_dimensions=True)
    [vector] = await embedder.embed_documents(["x"])
    assert vector == expected("x", 8)
    assert openai_stub.requests()[0].body["dimensions"] == 8


async def test_concurrency_is_capped(openai_stub: StubServer, make_embedder: MakeEmbedder) -> None:
    openai_stub.faults.stall(0.2, endpoint="embeddings")
    embedder = make_embedder(batch_size=1, max_concurrency=2)

    await embedder.embed_documents(["a", "b", "c"])

    first, second, third = sorted(r.received_at for r in openai_stub.requests())
    assert second - first < 0.2  # two in flight together
    assert third - first >= 0.2  # the third waited for a slot


async def test_wrong_dimension_is_permanent(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.wrong_dimensions(DIM + 1)
    with pytest.raises(PermanentEmbeddingError, match=f"{DIM + 1}-dimensional"):
        await make_embedder().embed_documents(["a", "b"])
    assert len(openai_stub.requests()) == 1


async def test_nan_is_permanent(openai_stub: StubServer, make_embedder: MakeEmbedder) -> None:
    openai_stub.faults.nan_values()
    with pytest.raises(PermanentEmbeddingError, match="NaN"):
        await make_embedder().embed_query("a")


async def test_infinity_is_permanent(openai_stub: StubServer, make_embedder: MakeEmbedder) -> None:
    openai_stub.faults.nan_values(value=float("-inf"))
    with pytest.raises(PermanentEmbeddingError):
        await make_embedder().embed_query("a")


async def test_bad_request_is_permanent_after_one_request(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.bad_request(1, message="'$.input' is invalid.")
    with pytest.raises(PermanentEmbeddingError, match=r"HTTP 400$") as caught:
        await make_embedder().embed_query("a")
    assert caught.value.status_code == 400
    # What the server said is for the log (`detail`), never in the message a job shows.
    assert "'$.input' is invalid" in caught.value.detail
    assert "invalid" not in str(caught.value)
    assert len(openai_stub.requests()) == 1


@pytest.mark.parametrize("status", [401, 403, 404, 422])
async def test_client_errors_are_permanent(
    openai_stub: StubServer, make_embedder: MakeEmbedder, status: int
) -> None:
    openai_stub.faults.error(status, 1)
    with pytest.raises(PermanentEmbeddingError) as caught:
        await make_embedder().embed_query("a")
    assert caught.value.status_code == status
    assert len(openai_stub.requests()) == 1


async def test_persistent_500_is_transient_after_retries(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.server_error(5)
    with pytest.raises(TransientEmbeddingError) as caught:
        await make_embedder(max_retries=1).embed_query("a")
    assert caught.value.status_code == 500 and caught.value.retry_after is None
    assert len(openai_stub.requests()) == 2


async def test_rate_limit_recovers_then_reports_retry_after(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.rate_limit(1, retry_after=0.05)
    embedder = make_embedder(max_retries=1)
    assert await embedder.embed_query("a") == expected("a")

    openai_stub.faults.rate_limit(2, retry_after=0.05)
    with pytest.raises(TransientEmbeddingError) as caught:
        await embedder.embed_query("a")
    assert caught.value.status_code == 429 and caught.value.retry_after == 0.05
    assert [r.status for r in openai_stub.requests()] == [429, 200, 429, 429]


async def test_exhausted_quota_is_permanent(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.rate_limit(5, retry_after=0.01, code="insufficient_quota")
    with pytest.raises(PermanentEmbeddingError):
        await make_embedder(max_retries=0).embed_query("a")


async def test_timeout_is_transient(openai_stub: StubServer, make_embedder: MakeEmbedder) -> None:
    openai_stub.faults.stall(10)
    started = time.monotonic()
    with pytest.raises(TransientEmbeddingError, match="timed out"):
        await make_embedder(timeout=0.2, max_retries=0).embed_query("a")
    assert time.monotonic() - started < 2


async def test_refused_connection_is_transient(make_embedder: MakeEmbedder) -> None:
    embedder = make_embedder(base_url=closed_port_url(), max_retries=0)
    with pytest.raises(TransientEmbeddingError, match="cannot reach"):
        await embedder.embed_query("a")


async def test_one_failed_batch_fails_the_call(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.bad_request(1)
    with pytest.raises(PermanentEmbeddingError):
        await make_embedder(batch_size=2).embed_documents(["a", "b", "c", "d", "e", "f"])


def test_error_tree() -> None:
    assert issubclass(TransientEmbeddingError, EmbeddingError)
    assert issubclass(PermanentEmbeddingError, EmbeddingError)
    assert not issubclass(PermanentEmbeddingError, TransientEmbeddingError)
    with pytest.raises(ValueError):
        OpenAIEmbedder(model="m", dimension=8, api_key="k", batch_size=0)


async def test_a_bare_string_is_rejected(make_embedder: MakeEmbedder) -> None:
    with pytest.raises(TypeError):
        await make_embedder().embed_documents("not a list")


def test_answers_are_read_in_both_encodings_and_refused_in_any_other_shape() -> None:
    vector = np.array([0.5, -1.25, 3.0], dtype="<f4")
    encoded = base64.b64encode(vector.tobytes()).decode()
    answer = {"data": [{"index": 1, "embedding": [1, 2.5]}, {"index": 0, "embedding": encoded}]}
    assert _embedding_items(answer) == [(1, [1.0, 2.5]), (0, [0.5, -1.25, 3.0])]
    for bad in [
        [],  # not an object
        {"data": None},
        {"data": [{"embedding": encoded}]},  # no index
        {"data": [{"index": "0", "embedding": encoded}]},
        {"data": [{"index": 0, "embedding": "not base64!"}]},
        {"data": [{"index": 0, "embedding": encoded[:-4]}]},  # bytes not a multiple of 4
        {"data": [{"index": 0, "embedding": ["1.0"]}]},
        {"data": [{"index": 0, "embedding": {"x": 1}}]},
    ]:
        with pytest.raises((ValueError, TypeError, KeyError)):
            _embedding_items(bad)


async def test_a_retry_after_longer_than_two_minutes_is_not_waited_for(
    openai_stub: StubServer, make_embedder: MakeEmbedder
) -> None:
    openai_stub.faults.rate_limit(1, retry_after=600)
    started = time.monotonic()
    with pytest.raises(TransientEmbeddingError) as caught:
        await make_embedder(max_retries=2).embed_query("a")
    assert caught.value.retry_after == 600 and time.monotonic() - started < 2
    assert len(openai_stub.requests()) == 1
