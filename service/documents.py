"""The document use cases behind the index API: accept, page, read and delete documents."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.common import ID_PATTERN
from schemas.documents import DocumentIn
from service.catalog.base import Accepted, JobRegistry, NewDocument
from service.config import Settings
from service.errors import BadRequest, PayloadTooLarge, Unavailable
from service.jobs.base import JobQueue
from service.store.base import Scope


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


class Documents:
    """Admission and chunking policy for new documents; listing and deletion in a scope."""

    def __init__(
        self, settings: Settings, registry: JobRegistry, queue: JobQueue, embedding: str
    ) -> None:
        """`embedding`: the dense model a new version records ("" for BM25 only)."""
        self.settings, self.registry, self.queue = settings, registry, queue
        self.embedding = embedding

    def new_document(self, tenant: str, doc: DocumentIn) -> NewDocument:
        """A validated document with its chunking settled: the request's, else the defaults."""
        settings = self.settings
        if len(doc.text) > settings.max_document_chars:
            raise PayloadTooLarge(
                f"document text has {len(doc.text)} characters; the limit is "
                f"{settings.max_document_chars} (CITELINE_MAX_DOCUMENT_CHARS)"
            )
        chunking = doc.chunking
        size = (chunking and chunking.max_chunk_size_tokens) or settings.max_chunk_size_tokens
        overlap = chunking.chunk_overlap_tokens if chunking else None
        if overlap is None:
            overlap = min(settings.chunk_overlap_tokens, size // 2)
        elif overlap > size // 2:
            raise BadRequest(f"chunk_overlap_tokens must be at most half of {size}")
        return NewDocument(
            scope=Scope(tenant, doc.collection),
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

    async def accept(self, docs: Sequence[NewDocument]) -> list[Accepted]:
        """Queue the documents' jobs, or 503 while the queue is full or does not answer."""
        limit = self.settings.max_queued_jobs
        if self.registry.queued + len(docs) > limit:
            raise Unavailable(
                f"the indexing queue is full ({limit} jobs); retry later", retry_after=5
            )
        return await self.queue.accept(docs)

    async def page(self, scope: Scope, cursor: str | None, limit: int) -> Page:
        rows = await self.registry.documents(scope, decode_cursor(cursor), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1]["document_id"]) if more else None)

    async def get(self, scope: Scope, document_id: str) -> dict[str, Any] | None:
        return await self.registry.document(scope, document_id)

    async def delete(self, scope: Scope, document_id: str) -> bool:
        """Tombstone the document (never served from now on), then remove its chunks."""
        if not await self.registry.delete(scope, document_id):
            return False
        await self.queue.delete_chunks(scope, document_id)
        return True
