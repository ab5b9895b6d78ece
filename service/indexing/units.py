"""The pipeline's units of work: a job in flight, a batch of chunks, a job's outcome."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Literal

from service.catalog.rows import JobRow
from service.files import TEXT, FileStore
from service.indexing.chunking import Chunk
from service.indexing.structure import Layout, chunk_document
from service.store.base import ChunkPoint, Scope, VectorStore


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job run ended: recorded `completed`/`failed`, or `retry` (transient, unrecorded)."""

    status: Literal["completed", "failed", "retry"]
    error: str | None = None
    retry_after: float | None = None


@dataclass(eq=False, slots=True)
class _Job:
    row: JobRow
    total: int = 0
    done: int = 0
    embedding_tokens: int = 0  # tokens sent to the dense embedder, for usage and cost
    closed: bool = False  # finished, failed or abandoned by its caller: chunks are skipped
    waiter: asyncio.Future[Outcome] | None = None
    # Set by the parse stage: the canonical text (the row's own for text posted as JSON), its
    # pages and headings, and the title its chunks carry.
    text: str = ""
    layout: Layout = field(default_factory=Layout)
    title: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.row.tenant, self.row.collection)


@dataclass(slots=True)
class _Batch:
    items: list[tuple[_Job, Chunk]]
    points: list[ChunkPoint] = field(default_factory=list)


def _chunk_all(
    jobs: list[_Job], files: FileStore | None, stopping: threading.Event | None = None
) -> list[tuple[_Job, list[Chunk] | str]]:
    """Chunks of each job (or why there are none); with `files` (a registry that does not keep
    them), texts posted as JSON get their canonical copy written there, in the same thread hop.
    Once `stopping` is set the rest are left out (a stop must not wait for a whole batch of
    large documents: they are queued again and chunked at the next start)."""
    out: list[tuple[_Job, list[Chunk] | str]] = []
    for job in jobs:
        if stopping is not None and stopping.is_set():
            break
        row = job.row
        try:
            chunks = chunk_document(job.text, job.layout, row.max_tokens, row.overlap_tokens)
        except ValueError as exc:
            out.append((job, f"chunking failed: {exc}"))
            continue
        if files is not None and row.media_type is None:
            data = job.text.encode("utf-8", "surrogatepass")
            try:
                files.write(job.scope, row.document_id, row.version, TEXT, data, durable=False)
            except OSError as exc:
                out.append((job, f"could not store the canonical text: {exc.strerror or exc}"))
                continue
        out.append((job, chunks))
    return out


def _upsert_all(store: VectorStore, by_scope: dict[Scope, list[ChunkPoint]]) -> None:
    for scope, points in by_scope.items():
        store.upsert(scope, points)
