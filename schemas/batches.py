"""Batch status as `GET /v1/batches/{id}` reports it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

BatchStatus = Literal["in_progress", "completed", "cancelled"]


class BatchCounts(BaseModel):
    total: int
    queued: int
    running: int
    completed: int
    failed: int = Field(description="failures are counted, not hidden: see each job's error")


class BatchOut(BaseModel):
    id: str
    status: BatchStatus = Field(description='"completed" once no job is queued or running')
    counts: BatchCounts
    chunks: int = Field(description="chunks stored so far by the batch's jobs")
    created_at: float
    completed_at: float | None
