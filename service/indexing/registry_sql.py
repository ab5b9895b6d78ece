"""The registry's schema and row types."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from schemas.jobs import JobStage, JobStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    tenant TEXT NOT NULL,
    collection TEXT NOT NULL,
    document_id TEXT NOT NULL,
    latest_version TEXT NOT NULL,
    latest_job TEXT NOT NULL,
    active_version TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    title TEXT,
    source TEXT,
    metadata TEXT NOT NULL,
    chars INTEGER NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, collection, document_id)
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    collection TEXT NOT NULL,
    document_id TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT NOT NULL,
    chunks_total INTEGER,
    chunks_done INTEGER NOT NULL DEFAULT 0,
    embedding_tokens INTEGER NOT NULL DEFAULT 0,
    tries INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    superseded_by TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    text TEXT NOT NULL,
    title TEXT,
    source TEXT,
    metadata TEXT NOT NULL,
    max_tokens INTEGER NOT NULL,
    overlap_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_document ON jobs (tenant, collection, document_id);
"""


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


def job_row(row: sqlite3.Row, **overrides: Any) -> JobRow:
    fields = {k: row[k] for k in row.keys() if k != "seq"}  # noqa: SIM118 - sqlite3.Row
    fields["metadata"] = json.loads(fields["metadata"])
    fields.update(overrides)
    return JobRow(**fields)


def doc_state(job_status: str) -> str:
    return {"completed": "indexed", "failed": "failed"}.get(job_status, "indexing")
