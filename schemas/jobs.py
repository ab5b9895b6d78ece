"""Indexing job state as `GET /v1/jobs/{id}` reports it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "completed", "failed"]
JobStage = Literal["queued", "parsing", "chunking", "embedding", "upserting", "finalizing", "done"]


class JobOut(BaseModel):
    job_id: str
    document_id: str
    collection: str
    version: str
    status: JobStatus
    stage: JobStage
    chunks_total: int | None
    chunks_done: int
    embedding_tokens: int = Field(description="tokens sent to the dense embedder")
    cost_usd: float | None = Field(
        description="estimate from CITELINE_MODEL_PRICES; null if unpriced"
    )
    tries: int
    error: str | None
    superseded_by: str | None = Field(
        default=None, description="a newer version replaced this one before it went live"
    )
    pages: int | None = Field(default=None, description="a PDF's pages or a deck's slides")
    pages_without_text: list[int] = Field(
        default_factory=list,
        description="pages (1-based) with no text layer, e.g. scans: not indexed (no OCR)",
    )
    created_at: float
    started_at: float | None
    finished_at: float | None
