"""The document use cases behind the index API: accept, page, read and delete documents, by
id, by collection or by filter, and compact what deletes leave behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from schemas.common import ID_PATTERN
from schemas.documents import ChunkingOptions, DocumentIn, FileOptions
from schemas.filters import Filter
from service.catalog.base import (
    Accepted,
    BatchRow,
    JobRegistry,
    NewDocument,
    Stored,
    content_version,
    document_id_of,
)
from service.config import Settings
from service.errors import BadRequest, NotFound, PayloadTooLarge, Unavailable
from service.files import ORIGINAL, TEXT, FileStore
from service.jobs.base import JobQueue
from service.quotas.metering import Metering
from service.served_matches import ServedMatches
from service.store.base import Scope, VectorStore
from service.tokens import count_tokens
from service.uploads import CheckedFile

QUOTA_STALE_S = 1.0  # a tenant's stored totals are re-read at most this often


def encode_cursor(document_id: str) -> str:
    return base64.urlsafe_b64encode(document_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The document id a page starts after; BadRequest for a cursor this service did not issue."""
    if cursor is None:
        return None
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        after = ""
    if not re.fullmatch(ID_PATTERN, after):
        raise BadRequest("cursor is not one this service issued")
    return after


@dataclass(frozen=True, slots=True)
class Page:
    documents: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Original:
    """A version's original file, to be served as it was uploaded."""

    path: Path
    media_type: str
    filename: str | None
    version: str


def new_batch_id() -> str:
    return "bat_" + secrets.token_hex(12)


class Documents:
    """Admission and chunking policy for new documents; listing and deletion in a scope."""

    def __init__(
        self,
        settings: Settings,
        registry: JobRegistry,
        queue: JobQueue,
        store: VectorStore,
        embedding: str,
        metering: Metering,
        files: FileStore,
    ) -> None:
        """`embedding`: the dense model a new version records ("" for BM25 only)."""
        self.settings, self.registry, self.queue, self.store = settings, registry, queue, store
        self.embedding = embedding
        self.metering = metering
        self._stored: dict[str, tuple[float, Stored]] = {}  # tenant -> (read at, totals)
        self._since: defaultdict[str, int] = defaultdict(int)  # bytes accepted since then
        # Paid embeddings (an OpenAI-compatible API) count against the tenant's token budget.
        self._paid_embeddings = settings.embedding_provider == "openai"
        self.files = files
        self._served_matches = ServedMatches(store, registry)

    def _chunking(self, chunking: ChunkingOptions | None) -> tuple[int, int]:
        """The request's chunk size and overlap, else the defaults."""
        settings = self.settings
        size = (chunking and chunking.max_chunk_size_tokens) or settings.max_chunk_size_tokens
        overlap = chunking.chunk_overlap_tokens if chunking else None
        if overlap is None:
            overlap = min(settings.chunk_overlap_tokens, size // 2)
        elif overlap > size // 2:
            raise BadRequest(f"chunk_overlap_tokens must be at most half of {size}")
        return size, overlap

    def new_file(
        self, scope: Scope, upload: CheckedFile, options: FileOptions, *, with_id: bool
    ) -> NewDocument:
        """An uploaded file as a document; its text is read by the parsing stage."""
        size, overlap = self._chunking(options.chunking)
        return NewDocument(
            scope=scope,
            document_id=options.id if with_id else None,
            text="",
            title=options.title if with_id else None,
            source=(options.source if with_id else None) or upload.filename,
            metadata=dict(options.metadata),
            max_tokens=size,
            overlap_tokens=overlap,
            embedding=self.embedding,
            media_type=upload.media_type,
            filename=upload.filename,
            file_sha256=upload.sha256,
        )

    def new_document(self, scope: Scope, doc: DocumentIn) -> NewDocument:
        """A validated document with its chunking settled: the request's, else the defaults."""
        settings = self.settings
        if len(doc.text) > settings.max_document_chars:
            raise PayloadTooLarge(
                f"document text has {len(doc.text)} characters; the limit is "
                f"{settings.max_document_chars} (CITELINE_MAX_DOCUMENT_CHARS)"
            )
        size, overlap = self._chunking(doc.chunking)
        return NewDocument(
            scope=scope,
            document_id=doc.id,
            text=doc.text,
            title=doc.title,
            source=doc.source,
            metadata=dict(doc.metadata),
            max_tokens=size,
            overlap_tokens=overlap,
            embedding=self.embedding,
        )

    def check_batch(self, count: int) -> None:
        limit = self.settings.max_batch_documents
        if count > limit:
            raise PayloadTooLarge(
                f"batch has {count} documents; the limit is {limit} (CITELINE_MAX_BATCH_DOCUMENTS)"
            )

    async def accept(
        self,
        docs: Sequence[NewDocument],
        *,
        batch_id: str | None = None,
        file_bytes: Sequence[int] | None = None,
    ) -> list[Accepted]:
        """Queue the documents' jobs, or 503 while the queue is full or does not answer;
        413 past the tenant's storage quota, 429 past its token budget (paid embeddings).
        `file_bytes`: the size of each document's original, for uploads (their text is read
        later, by the parsing stage, so their tokens are not known here)."""
        limit = self.settings.max_queued_jobs
        if self.registry.queued + len(docs) > limit:
            raise Unavailable(
                f"the indexing queue is full ({limit} jobs); retry later", retry_after=5
            )
        added: defaultdict[str, int] = defaultdict(int)
        sizes = file_bytes or [len(d.text.encode()) for d in docs]
        for doc, size in zip(docs, sizes, strict=True):
            added[doc.scope.tenant] += size
        for tenant, size in added.items():
            await self._check_quota(tenant, size)
            if self._paid_embeddings:
                await self.metering.check(tenant)
        accepted = await self.queue.accept(docs, batch_id=batch_id)
        for tenant, size in added.items():
            self._since[tenant] += size
        if self._paid_embeddings and file_bytes is None:
            await self._charge_embeddings(docs, accepted)
        return accepted

    async def _check_quota(self, tenant: str, size: int) -> None:
        """Refuse what would take the tenant past CITELINE_TENANT_MAX_BYTES or _MAX_CHUNKS.

        Checked against the stored totals (at most QUOTA_STALE_S old, plus what this process
        accepted since); a new version of a document counts in full until it replaces the old.
        """
        max_bytes, max_chunks = self.settings.tenant_max_bytes, self.settings.tenant_max_chunks
        if max_bytes is None and max_chunks is None:
            return
        read_at, stored = self._stored.get(tenant, (0.0, None))
        if stored is None or time.monotonic() - read_at > QUOTA_STALE_S:
            stored = await self.registry.tenant_storage(tenant)
            self._stored[tenant] = (time.monotonic(), stored)
            self._since[tenant] = 0
        used = stored.bytes + self._since[tenant]
        if max_bytes is not None and used + size > max_bytes:
            raise PayloadTooLarge(
                f"tenant {tenant!r} would store {used + size} bytes of text; its quota is "
                f"{max_bytes} (CITELINE_TENANT_MAX_BYTES). Delete documents to make room"
            )
        if max_chunks is not None and stored.chunks >= max_chunks:
            raise PayloadTooLarge(
                f"tenant {tenant!r} stores {stored.chunks} chunks; its quota is {max_chunks} "
                "(CITELINE_TENANT_MAX_CHUNKS). Delete documents to make room"
            )

    async def _charge_embeddings(
        self, docs: Sequence[NewDocument], accepted: Sequence[Accepted]
    ) -> None:
        """The tokens a new version sends to the embedder, charged when it is accepted."""
        fresh = [d for d, a in zip(docs, accepted, strict=True) if not a.duplicate]
        tokens = await asyncio.to_thread(lambda: [count_tokens(d.text) for d in fresh])
        for doc, n in zip(fresh, tokens, strict=True):
            await self.metering.charge_embedding(doc.scope.tenant, n)

    async def accept_files(
        self, files: Sequence[tuple[NewDocument, CheckedFile]], *, batch_id: str | None = None
    ) -> list[Accepted]:
        """Store each original (durably, under its document and version), then queue the
        jobs; originals this call wrote are removed again if the jobs were not taken."""
        docs = [replace(d, document_id=document_id_of(d)) for d, _ in files]
        written = await asyncio.gather(
            *(
                asyncio.to_thread(
                    self.files.write, d.scope, d.document_id or "", content_version(d), ORIGINAL,
                    f.data, durable=True,
                )
                for d, (_, f) in zip(docs, files, strict=True)
            )
        )  # fmt: skip
        try:
            sizes = [len(f.data) for _, f in files]
            return await self.accept(docs, batch_id=batch_id, file_bytes=sizes)
        except BaseException:
            for d, new in zip(docs, written, strict=True):
                if new:
                    with contextlib.suppress(OSError):
                        self.files.remove(
                            d.scope, d.document_id or "", content_version(d), ORIGINAL
                        )
            raise

    async def batch(self, tenant: str, batch_id: str) -> BatchRow:
        row = await self.registry.batch(batch_id, tenant)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return row

    async def cancel_batch(self, tenant: str, batch_id: str) -> BatchRow:
        reason = f"cancelled with its batch {batch_id}"
        row = await self.registry.cancel_batch(batch_id, tenant, reason)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return row

    async def page(self, scope: Scope, cursor: str | None, limit: int) -> Page:
        rows = await self.registry.documents(scope, decode_cursor(cursor), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1]["document_id"]) if more else None)

    async def get(self, scope: Scope, document_id: str) -> dict[str, Any] | None:
        return await self.registry.document(scope, document_id)

    async def _row(self, scope: Scope, document_id: str) -> dict[str, Any]:
        row = await self.registry.document(scope, document_id)
        if row is None:
            raise NotFound(f"no document {document_id!r} in collection {scope.collection!r}")
        return row

    async def content(self, scope: Scope, document_id: str) -> tuple[bytes, str]:
        """The canonical text (UTF-8) of the served version, else of the newest one once
        parsed; and which version it is."""
        row = await self._row(scope, document_id)
        for version in dict.fromkeys(v for v in (row["active_version"], row["version"]) if v):
            text = await self.registry.posted_text(scope, document_id, version)
            if text is not None:
                return text.encode("utf-8", "surrogatepass"), version
            data = await asyncio.to_thread(self.files.read, scope, document_id, version, TEXT)
            if data is not None:
                return data, version
        raise NotFound(f"document {document_id!r} has no text yet: it is still being parsed")

    async def original(self, scope: Scope, document_id: str) -> Original:
        """The original file of the served version, else of the newest one."""
        row = await self._row(scope, document_id)
        if row["media_type"] is None:
            raise NotFound(f"document {document_id!r} was posted as text; its text is at /content")
        for version in dict.fromkeys(v for v in (row["active_version"], row["version"]) if v):
            path = self.files.path(scope, document_id, version, ORIGINAL)
            if await asyncio.to_thread(path.exists):
                return Original(path, row["media_type"], row["filename"], version)
        raise NotFound(f"the original of document {document_id!r} is not stored here")

    async def delete(self, scope: Scope, document_id: str) -> bool:
        """Delete one document (see `_delete`); False when it was not live."""
        return bool(await self._delete(scope, [document_id]))

    async def _delete(self, scope: Scope, document_ids: Sequence[str]) -> list[str]:
        """Tombstone the documents at once (never served from now on), then erase their
        chunks (one store call) and every version's original and text; the ids that were
        live. A job still running for one of them removes its own chunks when it ends."""
        deleted = await self.registry.delete_documents(scope, document_ids)
        if deleted:
            await self.queue.delete_chunks(scope, deleted)
            await asyncio.to_thread(self.files.remove_documents, scope, deleted)
        return deleted

    async def delete_collection(self, scope: Scope) -> int:
        """Tombstone every document of the collection, then remove its chunks; a job still
        running for one of them removes its own chunks when it ends (its document is gone)."""
        deleted = await self.registry.delete_collection(scope)
        await asyncio.to_thread(self.store.delete_collection, scope)
        await asyncio.to_thread(self.files.remove_collection, scope)
        self._stored.pop(scope.tenant, None)
        return deleted

    async def delete_matching(
        self, scope: Scope, filters: Filter, limit: int
    ) -> tuple[list[str], bool]:
        """Delete up to `limit` documents whose served version matches `filters` (the search
        filter grammar over metadata); the ids deleted, and whether more match. A document
        still being indexed for the first time has no chunks yet, so it matches once indexed.
        """
        matching, more = await self._served_matches.take(scope, filters, limit)
        return sorted(await self._delete(scope, matching)), more

    async def compact(self) -> None:
        """Drop what deletions left in the registry's and the store's files (see
        `VectorStore.compact`: it can take seconds and blocks the store meanwhile)."""
        await self.registry.compact()
        await asyncio.to_thread(self.store.compact)
