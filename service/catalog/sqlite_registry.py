"""Documents and indexing jobs, persisted in SQLite under the data dir.

The registry is the source of truth for which version of each document is served: search
results whose version is not a document's active version are dropped, so a half-written new
version, a superseded one or a deleted document is never cited. Every statement runs on one
dedicated thread, which serialises them without locks and keeps fsyncs off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from service.catalog import sqlite_batches as batches
from service.catalog.base import (
    MAX_TRIES,
    Accepted,
    BatchRow,
    Claim,
    Finalized,
    NewDocument,
    ParsedInfo,
    Stored,
    Waiting,
    content_version,
    document_id_of,
    job_id_for,
)
from service.catalog.priority_thread import PriorityThread
from service.catalog.rows import JobRow, doc_state
from service.store.base import Scope

__all__ = ["SqliteRegistry"]

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
    bytes INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    media_type TEXT,
    filename TEXT,
    sha256 TEXT,
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
    overlap_tokens INTEGER NOT NULL,
    media_type TEXT,
    filename TEXT,
    pages INTEGER,
    pages_without_text TEXT NOT NULL DEFAULT '[]'
);
-- The canonical text of each served version posted as JSON (files have theirs in the file
-- store): copied from its job when the job completes, so /content needs no file per document.
CREATE TABLE IF NOT EXISTS texts (
    tenant TEXT NOT NULL,
    collection TEXT NOT NULL,
    document_id TEXT NOT NULL,
    version TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (tenant, collection, document_id, version)
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_document ON jobs (tenant, collection, document_id);
"""


# Columns added after a data dir may have been created: (table, column, definition).
_MIGRATIONS = (
    ("jobs", "embedding_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "media_type", "TEXT"),
    ("jobs", "filename", "TEXT"),
    ("jobs", "pages", "INTEGER"),
    ("jobs", "pages_without_text", "TEXT NOT NULL DEFAULT '[]'"),
    ("documents", "media_type", "TEXT"),
    ("documents", "filename", "TEXT"),
    ("documents", "bytes", "INTEGER NOT NULL DEFAULT 0"),
    ("documents", "sha256", "TEXT"),
)


def job_row(row: sqlite3.Row, **overrides: Any) -> JobRow:
    fields = {k: row[k] for k in row.keys() if k != "seq"}  # noqa: SIM118 - sqlite3.Row
    fields["metadata"] = json.loads(fields["metadata"])
    fields["pages_without_text"] = tuple(json.loads(fields["pages_without_text"]))
    fields.update(overrides)
    return JobRow(**fields)


T = TypeVar("T")

# Registry thread priorities: accepts by their size (1 = one document), then API reads and
# deletes, then the pipeline's bookkeeping, which only delays indexing by waiting.
_READ = 10_000
_BACKGROUND = 100_000
_ACCEPT_SLICE = 64
_IDS_PER_STATEMENT = 500  # bound parameters per statement: old SQLite builds allow 999


class SqliteRegistry:
    """The embedded registry: one SQLite file, every statement on one thread. It keeps the
    texts of served versions posted as JSON (`posted_text`), so no file is written for them."""

    keeps_texts = True

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = PriorityThread("registry")
        self._db: sqlite3.Connection | None = None
        self._path = path
        # scope -> document_id -> active version; read lock-free from the event loop.
        self.active: dict[Scope, dict[str, str]] = {}
        self.queued = 0  # jobs waiting to run, kept in step by accept/claim/requeue

    async def _call(self, fn: Callable[..., T], *args: Any, priority: float = _BACKGROUND) -> T:
        result: T = await asyncio.wrap_future(self._thread.submit(priority, fn, *args))
        return result

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the database, load active versions and requeue jobs a crash left running."""
        await self._call(self._open)

    def _open(self) -> None:
        db = sqlite3.connect(self._path, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        # Deleted content is overwritten, not left in free pages: a deleted document's text
        # must not stay in the file (see `compact` for the WAL).
        db.execute("PRAGMA secure_delete=ON")
        # Worker-side updates can be replayed (a rerun job rewrites the same points), so they
        # only need to survive a process crash; `accept` switches to FULL for its commit.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA + batches.SCHEMA)
        for table, column, definition in _MIGRATIONS:
            if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                if (table, column) == ("documents", "bytes"):  # before storage quotas
                    db.execute("UPDATE documents SET bytes = chars")
        if db.execute("PRAGMA user_version").fetchone()[0] < 1:
            with db:  # texts of jobs that ended before texts were dropped at the end
                db.execute(
                    "UPDATE jobs SET text='' WHERE status IN ('completed', 'failed') AND text != ''"
                )
                db.execute("PRAGMA user_version=1")
        self._db = db
        for row in db.execute(
            "SELECT tenant, collection, document_id, active_version FROM documents "
            "WHERE deleted = 0 AND active_version IS NOT NULL"
        ):
            self.active.setdefault(Scope(row[0], row[1]), {})[row[2]] = row[3]
        with db:
            db.execute(
                "UPDATE jobs SET status='failed', stage='done', finished_at=?, "
                "error='gave up after ' || tries || ' tries' "
                "WHERE status='running' AND tries >= ?",
                (time.time(), MAX_TRIES),
            )
        with db:
            db.execute("UPDATE jobs SET status='queued', stage='queued' WHERE status='running'")
        self.queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]

    async def close(self) -> None:
        await self._call(self._close)
        self._thread.shutdown()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("registry is not open")
        return self._db

    # -- accepting -------------------------------------------------------------------------
    async def accept(
        self, docs: Sequence[NewDocument], *, batch_id: str | None = None
    ) -> list[Accepted]:
        """Record documents and their jobs durably before any 202 goes out.

        Smaller requests go first, and a batch commits in slices, so a one-document POST never
        waits for a whole batch; a crash mid-batch leaves slices that a retry finds as duplicates.
        """
        out: list[Accepted] = []
        for start in range(0, len(docs), _ACCEPT_SLICE):
            part = docs[start : start + _ACCEPT_SLICE]
            out += await self._call(self._accept, part, batch_id, priority=len(docs))
        return out

    def _accept(self, docs: Sequence[NewDocument], batch_id: str | None) -> list[Accepted]:
        now = time.time()
        self.db.execute("PRAGMA synchronous=FULL")  # a 202 means the job survives power loss
        try:
            with self.db:
                out = [self._accept_one(doc, now) for doc in docs]
                if batch_id is not None and docs:
                    tenant = docs[0].scope.tenant
                    batches.add_members(self.db, batch_id, tenant, [a.job_id for a in out], now)
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")
        return out

    def _accept_one(self, doc: NewDocument, now: float) -> Accepted:
        db, scope = self.db, doc.scope
        version = content_version(doc)
        document_id = document_id_of(doc)
        row = db.execute(
            "SELECT d.latest_version, d.latest_job, d.generation, d.deleted, j.status "
            "FROM documents d JOIN jobs j ON j.job_id = d.latest_job "
            "WHERE d.tenant=? AND d.collection=? AND d.document_id=?",
            (scope.tenant, scope.collection, document_id),
        ).fetchone()
        if (
            row
            and not row["deleted"]
            and row["latest_version"] == version
            and row["status"] != "failed"
        ):
            return Accepted(document_id, row["latest_job"], row["status"], version, True)
        generation = 0 if row is None else row["generation"] + (1 if row["deleted"] else 0)
        job_id = job_id_for(scope, document_id, version, generation)
        meta = json.dumps(doc.metadata, ensure_ascii=False)
        db.execute(
            "INSERT INTO jobs (job_id, tenant, collection, document_id, version, status, stage,"
            " chunks_done, tries, created_at, text, title, source, metadata, max_tokens,"
            " overlap_tokens, media_type, filename)"
            " VALUES (?,?,?,?,?,'queued','queued',0,0,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(job_id) DO UPDATE SET status='queued', stage='queued', error=NULL,"
            " text=excluded.text,"
            " chunks_done=0, chunks_total=NULL, tries=0, finished_at=NULL, superseded_by=NULL",
            (
                job_id,
                scope.tenant,
                scope.collection,
                document_id,
                version,
                now,
                doc.text,
                doc.title,
                doc.source,
                meta,
                doc.max_tokens,
                doc.overlap_tokens,
                doc.media_type,
                doc.filename,
            ),
        )
        db.execute(
            "INSERT INTO documents (tenant, collection, document_id, latest_version, latest_job,"
            " generation, deleted, title, source, metadata, chars, bytes, chunks, created_at,"
            " updated_at, media_type, filename, sha256)"
            " VALUES (?,?,?,?,?,?,0,?,?,?,?,?,0,?,?,?,?,?)"
            " ON CONFLICT(tenant, collection, document_id) DO UPDATE SET"
            " latest_version=excluded.latest_version, latest_job=excluded.latest_job,"
            " generation=excluded.generation, title=excluded.title, source=excluded.source,"
            " metadata=excluded.metadata, chars=excluded.chars, bytes=excluded.bytes,"
            " updated_at=excluded.updated_at,"
            " media_type=excluded.media_type, filename=excluded.filename,"
            " sha256=excluded.sha256,"
            " created_at=CASE WHEN documents.deleted THEN excluded.created_at"
            "   ELSE documents.created_at END,"
            " active_version=CASE WHEN documents.deleted THEN NULL"
            "   ELSE documents.active_version END,"
            " chunks=CASE WHEN documents.deleted THEN 0 ELSE documents.chunks END,"
            " deleted=0",
            (
                scope.tenant,
                scope.collection,
                document_id,
                version,
                job_id,
                generation,
                doc.title,
                doc.source,
                meta,
                len(doc.text),
                len(doc.text.encode()),
                now,
                now,
                doc.media_type,
                doc.filename,
                doc.file_sha256,
            ),
        )
        self.queued += 1
        return Accepted(document_id, job_id, "queued", version, False)

    # -- reading ---------------------------------------------------------------------------
    async def job(self, job_id: str, tenant: str) -> JobRow | None:
        return await self._call(self._job, job_id, tenant, priority=_READ)

    def _job(self, job_id: str, tenant: str) -> JobRow | None:
        row = self.db.execute(
            "SELECT * FROM jobs WHERE job_id=? AND tenant=?", (job_id, tenant)
        ).fetchone()
        return job_row(row) if row else None

    async def document(self, scope: Scope, document_id: str) -> dict[str, Any] | None:
        rows = await self._call(self._documents, scope, document_id, None, 1, priority=_READ)
        return rows[0] if rows else None

    async def documents(self, scope: Scope, after: str | None, limit: int) -> list[dict[str, Any]]:
        return await self._call(self._documents, scope, None, after, limit, priority=_READ)

    def _documents(
        self, scope: Scope, document_id: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT d.*, j.status AS job_status FROM documents d JOIN jobs j"
            " ON j.job_id = d.latest_job WHERE d.tenant=? AND d.collection=? AND d.deleted=0"
        )
        args: list[Any] = [scope.tenant, scope.collection]
        if document_id is not None:
            sql += " AND d.document_id=?"
            args.append(document_id)
        if after is not None:
            sql += " AND d.document_id > ?"
            args.append(after)
        sql += " ORDER BY d.document_id LIMIT ?"
        args.append(limit)
        return [
            {
                "document_id": r["document_id"],
                "collection": r["collection"],
                "title": r["title"],
                "source": r["source"],
                "metadata": json.loads(r["metadata"]),
                "version": r["latest_version"],
                "active_version": r["active_version"],
                "media_type": r["media_type"],
                "filename": r["filename"],
                "sha256": r["sha256"],
                "chars": r["chars"],
                "chunks": r["chunks"],
                "job_id": r["latest_job"],
                "state": doc_state(r["job_status"]),
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
            }
            for r in self.db.execute(sql, args)
        ]

    async def collections(self, tenant: str, limit: int) -> list[str]:
        """Answered from memory: the active versions know every live, indexed document."""
        names = {s.collection for s, docs in self.active.items() if s.tenant == tenant and docs}
        return sorted(names)[:limit]

    async def active_versions(self, scope: Scope, document_ids: Sequence[str]) -> dict[str, str]:
        """Answered from memory, without a thread hop: this is on every search."""
        active = self.active.get(scope, {})
        return {d: v for d in document_ids if (v := active.get(d)) is not None}

    async def counts(self) -> dict[str, int]:
        return await self._call(self._counts)

    async def backup(self, path: Path) -> bool:
        """SQLite's online backup, on the registry's own thread: no write can interleave."""
        await self._call(self._backup, path, priority=_READ)
        return True

    def _backup(self, path: Path) -> None:
        copy = sqlite3.connect(path)
        try:
            self.db.backup(copy)
        finally:
            copy.close()

    def _counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    # -- deleting --------------------------------------------------------------------------
    async def delete_documents(self, scope: Scope, document_ids: Sequence[str]) -> list[str]:
        """Tombstone the documents in one transaction; the ids of those that were live."""
        return await self._call(self._delete_documents, scope, document_ids, priority=_READ)

    def _delete_documents(self, scope: Scope, document_ids: Sequence[str]) -> list[str]:
        deleted: list[str] = []
        with self.db:
            for start in range(0, len(document_ids), _IDS_PER_STATEMENT):
                ids = document_ids[start : start + _IDS_PER_STATEMENT]
                where = (
                    "tenant=? AND collection=? AND deleted=0"
                    f" AND document_id IN ({','.join('?' * len(ids))})"
                )
                args = (scope.tenant, scope.collection, *ids)
                live = self.db.execute(f"SELECT document_id FROM documents WHERE {where}", args)
                deleted += [r[0] for r in live]
                self.db.execute(
                    "UPDATE documents SET deleted=1, active_version=NULL, chunks=0, updated_at=?"
                    f" WHERE {where}",
                    (time.time(), *args),
                )
                self.db.execute(
                    "DELETE FROM texts WHERE tenant=? AND collection=?"
                    f" AND document_id IN ({','.join('?' * len(ids))})",
                    args,
                )
        active = self.active.get(scope, {})
        for document_id in deleted:
            active.pop(document_id, None)
        return deleted

    async def delete_collection(self, scope: Scope) -> int:
        return await self._call(self._delete_collection, scope, priority=_READ)

    def _delete_collection(self, scope: Scope) -> int:
        with self.db:
            n = self.db.execute(
                "UPDATE documents SET deleted=1, active_version=NULL, chunks=0, updated_at=?"
                " WHERE tenant=? AND collection=? AND deleted=0",
                (time.time(), scope.tenant, scope.collection),
            ).rowcount
            self.db.execute(
                "DELETE FROM texts WHERE tenant=? AND collection=?",
                (scope.tenant, scope.collection),
            )
        self.active.pop(scope, None)
        return int(n)

    async def posted_text(self, scope: Scope, document_id: str, version: str) -> str | None:
        """The text of `version` posted as JSON: served, or waiting in its job (None for a
        file, a deleted document, or a version no longer kept)."""
        return await self._call(self._posted_text, scope, document_id, version, priority=_READ)

    def _posted_text(self, scope: Scope, document_id: str, version: str) -> str | None:
        key = (scope.tenant, scope.collection, document_id, version)
        row = (
            self.db.execute(
                "SELECT text FROM texts WHERE tenant=? AND collection=? AND document_id=?"
                " AND version=?",
                key,
            ).fetchone()
            or self.db.execute(
                "SELECT text FROM jobs WHERE tenant=? AND collection=? AND document_id=?"
                " AND version=? AND media_type IS NULL AND status IN ('queued', 'running')"
                " ORDER BY seq DESC LIMIT 1",
                key,
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def tenant_storage(self, tenant: str) -> Stored:
        return await self._call(self._tenant_storage, tenant, priority=_READ)

    def _tenant_storage(self, tenant: str) -> Stored:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(chunks), 0), COALESCE(SUM(bytes), 0) FROM documents"
            " WHERE tenant=? AND deleted=0",
            (tenant,),
        ).fetchone()
        return Stored(int(row[0]), int(row[1]), int(row[2]))

    async def compact(self) -> None:
        """Checkpoint and truncate the WAL: its frames still hold rows as they were written,
        texts of ended jobs included (the main file overwrites them: secure_delete)."""
        await self._call(self._compact)

    def _compact(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- the worker's side -----------------------------------------------------------------
    async def waiting(self, limit: int) -> list[Waiting]:
        return await self._call(self._waiting, limit)

    def _waiting(self, limit: int) -> list[Waiting]:
        rows = self.db.execute(
            "SELECT job_id, tenant, collection, document_id FROM jobs WHERE status='queued'"
            " ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [Waiting(r[0], (r[1], r[2], r[3])) for r in rows]

    async def claim(
        self, job_ids: Sequence[str], *, owner: str = "", lock_ttl_s: float = 0.0
    ) -> list[Claim]:
        """Start queued jobs; this registry's one process runs them, so no lock is needed."""
        return await self._call(self._claim, job_ids)

    def _claim(self, job_ids: Sequence[str]) -> list[Claim]:
        now = time.time()
        out: list[Claim] = []
        with self.db:
            for job_id in job_ids:
                row = self.db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
                if row is None:
                    out.append(Claim(job_id, "missing", 0))
                    continue
                if row["status"] != "queued":
                    out.append(Claim(job_id, row["status"], row["tries"]))
                    continue
                tries = row["tries"] + 1
                stage = "chunking" if row["media_type"] is None else "parsing"
                self.db.execute(
                    "UPDATE jobs SET status='running', stage=?, tries=?, started_at=?"
                    " WHERE job_id=?",
                    (stage, tries, now, job_id),
                )
                claimed = job_row(row, status="running", stage=stage, tries=tries)
                out.append(Claim(job_id, "claimed", tries, claimed))
                self.queued -= 1
        return out

    async def requeue(self, jobs: Sequence[JobRow], reason: str) -> int:
        return await self._call(self._requeue, jobs, reason)

    def _requeue(self, jobs: Sequence[JobRow], reason: str) -> int:
        n = 0
        with self.db:
            for job in jobs:
                n += self.db.execute(
                    "UPDATE jobs SET status='queued', stage='queued', error=?"
                    " WHERE job_id=? AND status='running' AND tries=?",
                    (reason[:2000], job.job_id, job.tries),
                ).rowcount
        self.queued += n
        return n

    async def progress(self, stage: str, done: dict[str, int], totals: dict[str, int]) -> None:
        await self._call(self._progress, stage, done, totals)

    def _progress(self, stage: str, done: dict[str, int], totals: dict[str, int]) -> None:
        with self.db:
            for job_id, total in totals.items():
                self.db.execute(
                    "UPDATE jobs SET chunks_total=?, stage=? WHERE job_id=?", (total, stage, job_id)
                )
            for job_id, n in done.items():
                self.db.execute(
                    "UPDATE jobs SET chunks_done=?, stage=? WHERE job_id=?", (n, stage, job_id)
                )

    async def finish(self, jobs: Sequence[tuple[JobRow, int, int]]) -> list[Finalized]:
        """Make each job's version live if it is still its document's latest; else retire it."""
        return await self._call(self._finish, jobs)

    def _finish(self, jobs: Sequence[tuple[JobRow, int, int]]) -> list[Finalized]:
        with self.db:
            outcomes = [self._finish_one(job, n, tokens, time.time()) for job, n, tokens in jobs]
        for (job, _, _), outcome in zip(jobs, outcomes, strict=True):
            if outcome.activated:
                self.active.setdefault(Scope(job.tenant, job.collection), {})[job.document_id] = (
                    job.version
                )
        return outcomes

    def _finish_one(self, job: JobRow, chunks: int, tokens: int, now: float) -> Finalized:
        db, key = self.db, (job.tenant, job.collection, job.document_id)
        doc = db.execute(
            "SELECT latest_job, latest_version, active_version, deleted FROM documents"
            " WHERE tenant=? AND collection=? AND document_id=?",
            key,
        ).fetchone()
        alive = doc is not None and not doc["deleted"]
        current = alive and doc["latest_job"] == job.job_id
        superseded = doc["latest_version"] if alive and not current else None
        db.execute(
            "UPDATE jobs SET status='completed', stage='done', chunks_done=?, chunks_total=?,"
            " embedding_tokens=?, finished_at=?, superseded_by=?, text='' WHERE job_id=?",
            (chunks, chunks, tokens, now, superseded, job.job_id),
        )
        # Stale chunks can exist only if some other job of this document ever ran.
        others = db.execute(
            "SELECT 1 FROM jobs WHERE tenant=? AND collection=? AND document_id=? AND job_id != ?"
            " LIMIT 1",
            (*key, job.job_id),
        ).fetchone()
        latest = doc["latest_version"] if alive else None
        if not current:
            return Finalized(False, doc["active_version"] if alive else None, True, latest)
        db.execute(
            "UPDATE documents SET active_version=?, chunks=?, updated_at=?"
            " WHERE tenant=? AND collection=? AND document_id=?",
            (job.version, chunks, now, *key),
        )
        if others is not None:  # only another job of the document can have left a text
            db.execute(
                "DELETE FROM texts WHERE tenant=? AND collection=? AND document_id=?"
                " AND version != ?",
                (*key, job.version),
            )
        if job.media_type is None:
            db.execute(
                "INSERT OR REPLACE INTO texts VALUES (?,?,?,?,?)", (*key, job.version, job.text)
            )
        return Finalized(True, job.version, others is not None, latest)

    async def fail(self, job: JobRow, error: str) -> Finalized:
        """Record a failure; `keep_version` is the version whose chunks must stay (None: none)."""
        return await self._call(self._fail, job, error)

    def _fail(self, job: JobRow, error: str) -> Finalized:
        with self.db:
            self.db.execute(
                "UPDATE jobs SET status='failed', stage='done', error=?, finished_at=?, text=''"
                " WHERE job_id=?",
                (error[:2000], time.time(), job.job_id),
            )
            doc = self.db.execute(
                "SELECT active_version, latest_version, deleted FROM documents"
                " WHERE tenant=? AND collection=? AND document_id=?",
                (job.tenant, job.collection, job.document_id),
            ).fetchone()
        if doc is None or doc["deleted"]:
            return Finalized(False, None, True)
        return Finalized(False, doc["active_version"], True, doc["latest_version"])

    # -- parsing and batches ---------------------------------------------------------------
    async def parsed(self, job: JobRow, info: ParsedInfo) -> None:
        await self._call(self._parsed, job, info)

    def _parsed(self, job: JobRow, info: ParsedInfo) -> None:
        with self.db:
            n = self.db.execute(
                "UPDATE jobs SET title=?, pages=?, pages_without_text=? WHERE job_id=?"
                " AND status='running' AND tries=?",
                (
                    info.title,
                    info.pages,
                    json.dumps(list(info.pages_without_text)),
                    job.job_id,
                    job.tries,
                ),
            ).rowcount
            if n:
                self.db.execute(
                    "UPDATE documents SET title=?, chars=?, bytes=? WHERE tenant=?"
                    " AND collection=? AND document_id=? AND latest_job=?",
                    (info.title, info.chars, info.bytes, job.tenant, job.collection,
                     job.document_id, job.job_id),
                )  # fmt: skip

    async def batch(self, batch_id: str, tenant: str) -> BatchRow | None:
        return await self._call(batches.batch_row, self.db, batch_id, tenant, priority=_READ)

    async def cancel_batch(self, batch_id: str, tenant: str, reason: str) -> BatchRow | None:
        return await self._call(self._cancel_batch, batch_id, tenant, reason, priority=_READ)

    def _cancel_batch(self, batch_id: str, tenant: str, reason: str) -> BatchRow | None:
        if batches.batch_row(self.db, batch_id, tenant) is None:
            return None
        with self.db:
            self.queued -= batches.cancel(self.db, batch_id, reason[:2000], time.time())
        return batches.batch_row(self.db, batch_id, tenant)
