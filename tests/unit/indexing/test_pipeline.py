"""The pipeline on its own: a real SQLite catalog and Edge shard, embedders that misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from service.catalog.base import NewDocument
from service.catalog.rows import JobRow
from service.catalog.sqlite_registry import SqliteRegistry
from service.embeddings.dense import PermanentEmbeddingError, TransientEmbeddingError
from service.embeddings.sparse import Bm25Encoder
from service.files import FileStore
from service.indexing.chunking import chunk_text
from service.indexing.pipeline import Pipeline
from service.parsing.model import Limits
from service.parsing.process import ParserPool
from service.store.base import ChunkPoint, Scope, StoreError, point_id
from service.store.edge import EdgeStore

SCOPE = Scope("default", "default")
DIM = 4


class Embedder:
    """Deterministic vectors; refuses texts containing POISON; fails `transient` calls first."""

    model, dimension = "fake", DIM

    def __init__(self, transient: int = 0, gate: asyncio.Event | None = None) -> None:
        self.transient = transient
        self.gate = gate
        self.calls: list[int] = []

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        if self.gate is not None:
            await self.gate.wait()
        if self.transient > 0:
            self.transient -= 1
            raise TransientEmbeddingError("429 from the fake", status_code=429, retry_after=0)
        if any("POISON" in t for t in texts):
            raise PermanentEmbeddingError("400 from the fake", status_code=400)
        return [[1.0, float(len(t)), 0.5, 0.25] for t in texts]

    async def embed_query(self, text: str) -> list[float]:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        return None


class BrokenStore(EdgeStore):
    def upsert(self, scope: Scope, points: Sequence[ChunkPoint]) -> None:
        raise StoreError("the disk is full")


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    await registry.open()
    store = EdgeStore(tmp_path / "edge", dense_dim=DIM)
    made: list[Pipeline] = []

    def make(dense: Any = None, store_: Any = None, **options: Any) -> Pipeline:
        pipeline = Pipeline(
            registry=registry, store=store_ or store, sparse=Bm25Encoder(), dense=dense,
            files=FileStore(tmp_path / "files"), parser=ParserPool(1, 30, 1024, Limits()),
            **{"retry_budget_s": 0.05, **options},
        )  # fmt: skip
        pipeline.start()
        made.append(pipeline)
        return pipeline

    yield {"registry": registry, "store": store, "make": make}
    for pipeline in made:
        await pipeline.stop()
    store.close()
    await registry.close()


async def claim(registry: SqliteRegistry, *texts: str) -> list[JobRow]:
    docs = [
        NewDocument(SCOPE, f"d{i}", t, None, None, {}, max_tokens=64, overlap_tokens=8)
        for i, t in enumerate(texts)
    ]
    accepted = await registry.accept(docs)
    claims = await registry.claim([a.job_id for a in accepted])
    return [c.row for c in claims if c.row is not None]


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


LONG = " ".join(f"Sentence number {i} talks about volcanoes and glaciers." for i in range(60))


async def test_a_job_runs_to_its_chunks_and_completes(parts: dict[str, Any]) -> None:
    (row,) = await claim(parts["registry"], LONG)
    outcome = await parts["make"](dense=Embedder()).run(row)
    assert outcome.status == "completed"
    chunks = chunk_text(LONG, 64, 8)
    expected = {point_id(SCOPE, "d0", row.version, c.index) for c in chunks}
    assert set(parts["store"].chunk_ids(SCOPE, "d0")) == expected and len(chunks) > 5
    job = await parts["registry"].job(row.job_id, "default")
    assert job.status == "completed" and job.chunks_total == job.chunks_done == len(chunks)
    assert job.embedding_tokens == sum(c.tokens for c in chunks)


async def test_a_posted_text_is_kept_by_the_registry_not_written_to_a_file(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    (row,) = await claim(parts["registry"], LONG)
    assert (await parts["make"]().run(row)).status == "completed"
    assert await parts["registry"].posted_text(SCOPE, "d0", row.version) == LONG
    assert not (tmp_path / "files").exists()  # no file per document: that cost ~0.5 ms each


async def test_a_refused_document_fails_alone_in_a_shared_batch(parts: dict[str, Any]) -> None:
    rows = await claim(parts["registry"], "Etna is a volcano.", "POISON pill", "Glaciers carve.")
    embedder = Embedder()
    pipeline = parts["make"](dense=embedder)
    outcomes = await asyncio.gather(*(pipeline.run(r) for r in rows))
    assert [o.status for o in outcomes] == ["completed", "failed", "completed"]
    assert "400 from the fake" in (outcomes[1].error or "")
    assert parts["store"].chunk_ids(SCOPE, "d1") == []
    assert len(parts["store"].chunk_ids(SCOPE, "d0")) == 1
    assert embedder.calls[0] == 3  # one shared batch first, then one call per document


async def test_transient_failures_are_retried_within_the_budget(parts: dict[str, Any]) -> None:
    (row,) = await claim(parts["registry"], "Etna is a volcano.")
    embedder = Embedder(transient=2)
    outcome = await parts["make"](dense=embedder, retry_budget_s=5.0).run(row)
    assert outcome.status == "completed" and len(embedder.calls) == 3


async def test_a_run_past_its_budget_is_handed_back_unrecorded(parts: dict[str, Any]) -> None:
    (row,) = await claim(parts["registry"], "Etna is a volcano.")
    outcome = await parts["make"](dense=Embedder(transient=100), retry_budget_s=0.0).run(row)
    assert outcome.status == "retry" and "429 from the fake" in (outcome.error or "")
    job = await parts["registry"].job(row.job_id, "default")
    assert job.status == "running"  # the caller (arq) decides: nothing was recorded


async def test_a_submitted_job_that_keeps_failing_is_recorded_failed(
    parts: dict[str, Any],
) -> None:
    (row,) = await claim(parts["registry"], "Etna is a volcano.")
    settled: list[JobRow] = []
    pipeline = parts["make"](dense=Embedder(transient=100), retry_budget_s=0.0)

    async def on_settled(job: JobRow) -> None:
        settled.append(job)

    pipeline.on_settled = on_settled
    await pipeline.submit(row)
    await until(lambda: settled)
    job = await parts["registry"].job(row.job_id, "default")
    assert job.status == "failed" and "after retries" in job.error


async def test_a_store_failure_fails_the_job_with_the_reason(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    (row,) = await claim(parts["registry"], "Etna is a volcano.")
    broken = BrokenStore(tmp_path / "broken")
    try:
        outcome = await parts["make"](store_=broken).run(row)
    finally:
        broken.close()
    assert outcome.status == "retry" and "store write failed: the disk is full" in (
        outcome.error or ""
    )


async def test_a_slow_embedder_bounds_the_chunks_waiting(parts: dict[str, Any]) -> None:
    gate = asyncio.Event()
    rows = await claim(parts["registry"], *(f"Document {i} about lava." for i in range(40)))
    pipeline = parts["make"](dense=Embedder(gate=gate), batch_size=4, queue_size=2)
    runs = [asyncio.create_task(pipeline.run(r)) for r in rows]
    seen: list[int] = []

    def full_with_work_left() -> bool:  # the chunker waits although jobs are queued
        seen.append(len(pipeline._chunks))
        return len(pipeline._chunks) == pipeline._chunks_max and not pipeline._jobs.empty()

    await until(full_with_work_left)
    assert max(seen) == pipeline._chunks_max == 8
    gate.set()
    outcomes = await asyncio.gather(*runs)
    assert {o.status for o in outcomes} == {"completed"}


async def test_an_abandoned_run_writes_nothing_more(parts: dict[str, Any]) -> None:
    gate = asyncio.Event()
    abandoned, later = await claim(parts["registry"], LONG, "Glaciers carve valleys.")
    embedder = Embedder(gate=gate)
    pipeline = parts["make"](dense=embedder)
    run = asyncio.create_task(pipeline.run(abandoned))
    await until(lambda: embedder.calls)  # its chunks are in the embed stage
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    gate.set()
    # The stages are first in, first out: once a later job is through, so is the abandoned one.
    assert (await pipeline.run(later)).status == "completed"
    assert parts["store"].chunk_ids(SCOPE, "d0") == []
    assert len(parts["store"].chunk_ids(SCOPE, "d1")) == 1
    job = await parts["registry"].job(abandoned.job_id, "default")
    assert job.status == "running"
