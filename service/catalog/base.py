"""The catalog contract, shared by the SQLite (embedded) and Redis (scaled-out) registries.

A registry records documents and their indexing jobs and decides which version of each
document is live. Search drops every hit whose version is not its document's active version,
so a half-written new version, a superseded one or a deleted document is never cited.

Errors: a registry whose backing service does not answer raises `RegistryUnavailable`
(the API answers 503 with Retry-After); nothing else is expected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from service.catalog.rows import JobRow
from service.store.base import Scope

DocKey = tuple[str, str, str]  # tenant, collection, document_id
ClaimStatus = Literal["claimed", "locked", "running", "missing", "completed", "failed"]

MAX_TRIES = 5


class RegistryUnavailable(Exception):
    """The registry's store did not answer in time; the caller may retry after `retry_after`."""

    def __init__(self, detail: str, *, retry_after: float = 2.0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class NewDocument:
    scope: Scope
    document_id: str | None
    text: str
    title: str | None
    source: str | None
    metadata: dict[str, Any]
    max_tokens: int
    overlap_tokens: int
    embedding: str = ""  # the dense model and dimension the chunks get; "" for BM25 only
    # An uploaded file: its media type (None: the text was posted as JSON), name and digest.
    # Its text is "" until the parsing stage reads the original (see `service.files`).
    media_type: str | None = None
    filename: str | None = None
    file_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    document_id: str
    job_id: str
    status: str
    version: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Finalized:
    """What a finished (or failed) job did: whether its version went live, what to keep."""

    activated: bool
    keep_version: str | None
    # False when no other version of the document was ever written, or when the registry
    # refused the update (a stale attempt of a job that another attempt now owns).
    needs_cleanup: bool
    # The document's newest version (its job may still wait): its original must stay too.
    # None when the document is deleted.
    latest_version: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to claiming one job: `row` (now running, `tries` counted) when `claimed`."""

    job_id: str
    status: ClaimStatus
    tries: int
    row: JobRow | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """What a tenant keeps: live documents, their chunks and the UTF-8 bytes of their text."""

    documents: int = 0
    chunks: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued job, as a queue that runs jobs in this process needs it."""

    job_id: str
    document: DocKey


@dataclass(frozen=True, slots=True)
class ParsedInfo:
    """What the parsing stage learnt about a file job's version."""

    title: str | None
    chars: int
    pages: int | None
    pages_without_text: tuple[int, ...] = ()
    bytes: int = 0  # of the text, UTF-8: what the tenant's storage quota counts


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A batch's jobs counted by status; `completed_at` once none is queued or running."""

    batch_id: str
    tenant: str
    total: int
    counts: dict[str, int]
    cancelled: bool
    created_at: float
    completed_at: float | None
    collections: frozenset[str]  # of its documents: a key must be able to read them all
    chunks: int = 0  # stored so far by the batch's jobs (a progress figure)

    @property
    def open(self) -> int:
        return self.counts.get("queued", 0) + self.counts.get("running", 0)

    @property
    def status(self) -> Literal["in_progress", "completed", "cancelled"]:
        if self.cancelled:
            return "cancelled"
        return "in_progress" if self.open else "completed"


BATCH_STATUSES = ("queued", "running", "completed", "failed")


def content_version(doc: NewDocument) -> str:
    """Hash of everything that shapes the stored chunks: same input, same version."""
    shape: list[Any] = [doc.text, doc.title, doc.source, doc.metadata]
    shape += [doc.max_tokens, doc.overlap_tokens]
    if doc.embedding:  # another embedding model makes another version, so re-posting re-indexes
        shape.append(doc.embedding)
    if doc.file_sha256 is not None:  # a file: its bytes (and name) instead of its text
        shape += ["file", doc.file_sha256, doc.media_type, doc.filename]
    canon = json.dumps(shape, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def derived_document_id(scope: Scope, text: str) -> str:
    key = f"{scope.tenant}\x1f{scope.collection}\x1f{text}"
    return "doc_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def document_id_of(doc: NewDocument) -> str:
    """The given id, else one derived from the content: the text, or the file's bytes."""
    if doc.document_id:
        return doc.document_id
    content = doc.text if doc.file_sha256 is None else f"\x1ffile\x1f{doc.file_sha256}"
    return derived_document_id(doc.scope, content)


def job_id_key(scope: Scope, document_id: str, version: str, generation: int) -> str:
    """What a job id is derived from: the document, its content version and its generation."""
    return f"{scope.tenant}\x1f{scope.collection}\x1f{document_id}\x1f{version}\x1f{generation}"


def job_id_for(scope: Scope, document_id: str, version: str, generation: int) -> str:
    key = job_id_key(scope, document_id, version, generation)
    return "job_" + hashlib.sha256(key.encode()).hexdigest()[:24]


class JobRegistry(Protocol):
    """What the routes, the queues, the pipeline and the retriever need from a registry."""

    # Jobs waiting to run, as last seen: a soft limit for new work, may lag other processes.
    queued: int
    # Whether `posted_text` has the texts of documents posted as JSON. Where it has not (Redis:
    # everything it holds is in memory), the pipeline writes each one to the file store.
    keeps_texts: bool

    async def open(self) -> None:
        """Open; jobs a crash left running are queued again where no other process runs them."""
        ...

    async def close(self) -> None: ...

    async def accept(
        self, docs: Sequence[NewDocument], *, batch_id: str | None = None
    ) -> list[Accepted]:
        """Record documents and their jobs durably; identical content gives the same job.
        With `batch_id`, the batch is created and every job (duplicates too) joins it."""
        ...

    async def batch(self, batch_id: str, tenant: str) -> BatchRow | None:
        """The batch's counts: one cheap read, to be polled."""
        ...

    async def cancel_batch(self, batch_id: str, tenant: str, reason: str) -> BatchRow | None:
        """Fail the batch's queued jobs with `reason` (running ones finish); the batch is
        `cancelled` when anything was still open."""
        ...

    async def parsed(self, job: JobRow, info: ParsedInfo) -> None:
        """Record what parsing found (title, size, pages) on a running file job and, while it
        is its document's latest, on the document."""
        ...

    async def waiting(self, limit: int) -> list[Waiting]:
        """Queued jobs, oldest first (what a queue in this process resumes at start)."""
        ...

    async def claim(
        self, job_ids: Sequence[str], *, owner: str = "", lock_ttl_s: float = 0.0
    ) -> list[Claim]:
        """Start each job: mark it running and count the try.

        A job already marked running is started again only where that means its last attempt
        ended (the Redis registry: arq delivered it again); the SQLite registry's one process
        is running it, so it answers `running`. With an `owner` (a worker id), the document's
        lock is taken first (`locked` while another live worker holds it).
        """
        ...

    async def requeue(self, jobs: Sequence[JobRow], reason: str) -> int:
        """Put running attempts back to `queued` (they run again), noting why."""
        ...

    async def job(self, job_id: str, tenant: str) -> JobRow | None: ...

    async def document(self, scope: Scope, document_id: str) -> dict[str, Any] | None: ...

    async def documents(
        self, scope: Scope, after: str | None, limit: int
    ) -> list[dict[str, Any]]: ...

    async def collections(self, tenant: str, limit: int) -> list[str]:
        """The tenant's collections that hold at least one live document, sorted."""
        ...

    async def counts(self) -> dict[str, int]: ...

    async def backup(self, path: Path) -> bool:
        """Write a consistent copy to the new file `path`; False where the registry lives in a
        server with its own backups (Redis)."""
        ...

    async def delete_documents(self, scope: Scope, document_ids: Sequence[str]) -> list[str]:
        """Tombstone the documents at once (one transaction): from this moment on none is
        served. The ids of those that were live, the others (unknown, already deleted) left
        out."""
        ...

    async def delete_collection(self, scope: Scope) -> int:
        """Tombstone every live document of the scope; how many there were."""
        ...

    async def posted_text(self, scope: Scope, document_id: str, version: str) -> str | None:
        """The text of `version` of a document posted as JSON, where `keeps_texts`; else None."""
        ...

    async def tenant_storage(self, tenant: str) -> Stored:
        """What the tenant's live documents hold (the storage quota counts this)."""
        ...

    async def compact(self) -> None:
        """Drop what deleted rows and dropped job texts left in the registry's files."""
        ...

    async def active_versions(self, scope: Scope, document_ids: Sequence[str]) -> dict[str, str]:
        """The served version of each given document that has one."""
        ...

    async def progress(self, stage: str, done: dict[str, int], totals: dict[str, int]) -> None: ...

    async def finish(self, jobs: Sequence[tuple[JobRow, int, int]]) -> list[Finalized]:
        """Make each job's version live if it is still its document's latest; else retire it."""
        ...

    async def fail(self, job: JobRow, error: str) -> Finalized:
        """Record a failure; `keep_version` is the version whose chunks must stay."""
        ...
