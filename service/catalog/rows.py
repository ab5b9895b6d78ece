"""The rows both registries keep: a job, and how a job's status shows on its document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.jobs import JobStage, JobStatus


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    tenant: str
    collection: str
    document_id: str
    version: str
    status: JobStatus
    stage: JobStage
    chunks_total: int | None
    chunks_done: int
    embedding_tokens: int
    tries: int
    error: str | None
    superseded_by: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    text: str
    title: str | None
    source: str | None
    metadata: dict[str, Any]
    max_tokens: int
    overlap_tokens: int
    media_type: str | None = None  # None: posted as JSON text; else an uploaded file
    filename: str | None = None
    pages: int | None = None  # a paged file's page (slide) count, once parsed
    pages_without_text: tuple[int, ...] = ()


def doc_state(job_status: str) -> str:
    return {"completed": "indexed", "failed": "failed"}.get(job_status, "indexing")
