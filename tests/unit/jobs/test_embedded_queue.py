"""The embedded queue: oldest first, one running job per document, resumed after a stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.catalog.base import NewDocument
from service.catalog.rows import JobRow
from service.catalog.sqlite_registry import SqliteRegistry
from service.jobs.embedded import EmbeddedQueue
from service.store.base import Scope

SCOPE = Scope("default", "default")


class HeldPipeline:
    """Records what the queue submits and settles jobs only when the test says so."""

    def __init__(self) -> None:
        self.submitted: list[JobRow] = []
        self.changed = asyncio.Event()
        self.on_settled: Any = None

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def submit(self, job: JobRow) -> None:
        self.submitted.append(job)
        self.changed.set()

    async def delete_chunks(self, scope: Scope, document_ids: Sequence[str]) -> None:
        return None

    async def settle(self, job: JobRow) -> None:
        await self.on_settled(job)

    async def until(self, count: int) -> list[JobRow]:
        async with asyncio.timeout(5):
            while len(self.submitted) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.submitted


def doc(document_id: str, text: str) -> NewDocument:
    return NewDocument(SCOPE, document_id, text, None, None, {}, max_tokens=64, overlap_tokens=8)


async def queue_on(path: Path) -> tuple[SqliteRegistry, HeldPipeline, EmbeddedQueue]:
    registry = SqliteRegistry(path)
    await registry.open()
    pipeline = HeldPipeline()
    queue = EmbeddedQueue(registry, pipeline, max_inflight=8)  # type: ignore[arg-type]
    await queue.start()
    return registry, pipeline, queue


async def test_one_job_per_document_at_a_time_oldest_first(tmp_path: Path) -> None:
    registry, pipeline, queue = await queue_on(tmp_path / "r.sqlite3")
    try:
        v1, other, v2 = (
            await queue.accept([doc("a", "one")]) + await queue.accept([doc("b", "x")])
            + await queue.accept([doc("a", "two")])
        )  # fmt: skip
        first = await pipeline.until(2)
        assert [j.job_id for j in first] == [v1.job_id, other.job_id]  # v2 waits for v1
        assert queue.inflight == 2
        await pipeline.settle(first[0])
        assert [j.job_id for j in await pipeline.until(3)][-1] == v2.job_id
    finally:
        await queue.stop()
        await registry.close()


async def test_a_duplicate_post_is_not_run_twice(tmp_path: Path) -> None:
    registry, pipeline, queue = await queue_on(tmp_path / "r.sqlite3")
    try:
        await queue.accept([doc("a", "one")])
        again = await queue.accept([doc("a", "one")])
        await queue.accept([doc("b", "two")])
        assert again[0].duplicate
        submitted = await pipeline.until(2)
        assert [j.document_id for j in submitted] == ["a", "b"]
    finally:
        await queue.stop()
        await registry.close()


async def test_jobs_cut_short_by_a_stop_run_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    registry, pipeline, queue = await queue_on(path)
    (running,) = await queue.accept([doc("a", "one")])
    await pipeline.until(1)
    await queue.stop()  # the job never settled
    job = await registry.job(running.job_id, "default")
    assert job is not None and job.status == "queued" and job.error == "interrupted by a stop"
    await registry.close()

    registry, pipeline, queue = await queue_on(path)
    try:
        (resumed,) = await pipeline.until(1)
        assert resumed.job_id == running.job_id and resumed.tries == 2
    finally:
        await queue.stop()
        await registry.close()
