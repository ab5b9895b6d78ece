"""Batches in the SQLite registry: a batch is a set of jobs, counted by their live status.

Counting joins the batch's members to their jobs through the job id's unique index: a few
milliseconds for 5,000 jobs, on the registry thread at read priority.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from service.catalog.base import BATCH_STATUSES, BatchRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    batch_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (batch_id, job_id)
) WITHOUT ROWID;
"""


def add_members(
    db: sqlite3.Connection, batch_id: str, tenant: str, job_ids: Sequence[str], now: float
) -> None:
    db.execute(
        "INSERT OR IGNORE INTO batches (batch_id, tenant, created_at) VALUES (?,?,?)",
        (batch_id, tenant, now),
    )
    db.executemany(
        "INSERT OR IGNORE INTO batch_jobs (batch_id, job_id) VALUES (?,?)",
        [(batch_id, j) for j in job_ids],
    )


def batch_row(db: sqlite3.Connection, batch_id: str, tenant: str) -> BatchRow | None:
    head = db.execute(
        "SELECT cancelled, created_at FROM batches WHERE batch_id=? AND tenant=?",
        (batch_id, tenant),
    ).fetchone()
    if head is None:
        return None
    counts = dict.fromkeys(BATCH_STATUSES, 0)
    last = None
    chunks = 0
    for status, n, finished, done in db.execute(
        "SELECT j.status, COUNT(*), MAX(j.finished_at), SUM(j.chunks_done) FROM batch_jobs b"
        " JOIN jobs j ON j.job_id = b.job_id WHERE b.batch_id=? GROUP BY j.status",
        (batch_id,),
    ):
        counts[status] = n
        chunks += done or 0
        if finished is not None:
            last = max(last or 0.0, finished)
    collections = frozenset(
        c for (c,) in db.execute(
            "SELECT DISTINCT j.collection FROM batch_jobs b"
            " JOIN jobs j ON j.job_id = b.job_id WHERE b.batch_id=?",
            (batch_id,),
        )
    )  # fmt: skip
    open_jobs = counts["queued"] + counts["running"]
    return BatchRow(
        batch_id, tenant, sum(counts.values()), counts, bool(head[0]), head[1],
        None if open_jobs else last or head[1], collections, chunks,
    )  # fmt: skip


def cancel(db: sqlite3.Connection, batch_id: str, reason: str, now: float) -> int:
    """Fail the batch's queued jobs; returns how many. Marks the batch cancelled if any job
    was still open."""
    n = db.execute(
        "UPDATE jobs SET status='failed', stage='done', error=?, finished_at=?"
        " WHERE status='queued' AND job_id IN (SELECT job_id FROM batch_jobs WHERE batch_id=?)",
        (reason, now, batch_id),
    ).rowcount
    running = db.execute(
        "SELECT COUNT(*) FROM batch_jobs b JOIN jobs j ON j.job_id = b.job_id"
        " WHERE b.batch_id=? AND j.status='running'",
        (batch_id,),
    ).fetchone()[0]
    if n or running:
        db.execute("UPDATE batches SET cancelled=1 WHERE batch_id=?", (batch_id,))
    return int(n)
