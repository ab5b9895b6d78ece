"""GET /v1/jobs/{id}/events: progress as SSE, ending with the job's final state, in both modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.integration.workers.helpers import WORDS, scaled_server
from tests.stubs.openai_stub import StubServer

DIM = 16


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(dimension=DIM) as s:
        yield s


@pytest.mark.parametrize("mode", ["embedded", "redis"])
def test_progress_stream_ends_with_the_final_state(
    mode: str, request: pytest.FixtureRequest, make_server: Any, stub: StubServer
) -> None:
    stub.faults.stall(0.15, endpoint="embeddings")  # several batches, each visibly slow
    dense = {
        "embedding_base_url": stub.base_url,
        "embedding_model": "stub-embed",
        "embedding_dimension": DIM,
        "embed_batch_size": 4,
    }
    if mode == "redis":
        live = scaled_server(make_server, request.getfixturevalue("redis_server").url, **dense)
    else:
        live = make_server(**dense)
    text = " ".join(f"{WORDS[k % 10]} line {k}." for k in range(120))
    doc = {"id": "stream", "text": text, "chunking": {"max_chunk_size_tokens": 64}}
    events: list[tuple[str, str]] = []
    with httpx.Client(base_url=live.url, timeout=30) as c:
        job_id = c.post("/v1/documents", json=doc).json()["job_id"]
        with connect_sse(c, "GET", f"/v1/jobs/{job_id}/events") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            events = [(e.event, e.data) for e in source.iter_sse()]
        assert c.get("/v1/jobs/job_000000000000000000000000/events").status_code == 404

    assert events[-1] == ("message", "[DONE]")
    name, final = events[-2][0], json.loads(events[-2][1])
    assert name == "done"
    assert (final["job_id"], final["status"], final["stage"]) == (job_id, "completed", "done")
    assert final["chunks_done"] == final["chunks_total"] > 4
    progress = [json.loads(data) for name, data in events[:-2]]
    assert progress and all(n == "progress" for n, _ in events[:-2])
    assert all(p["status"] in ("queued", "running") for p in progress)
    done = [p["chunks_done"] for p in progress]
    assert done == sorted(done)
    assert any(0 < n < final["chunks_total"] for n in done), "no intermediate progress seen"
