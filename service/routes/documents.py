"""Index API: accept documents (202 + job), list, read and delete them."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from schemas.common import ID_PATTERN, CollectionName, DocumentId
from schemas.documents import (
    BatchAccepted,
    BatchIn,
    DocumentAccepted,
    DocumentDeleted,
    DocumentIn,
    DocumentOut,
    DocumentPage,
    IndexIn,
)
from service.config import Settings
from service.deps import RuntimeDep, TenantDep
from service.errors import BadRequest, NotFound, PayloadTooLarge, Unavailable
from service.indexing.registry import NewDocument
from service.runtime import Runtime
from service.store.base import Scope

router = APIRouter(prefix="/v1", tags=["documents"])

Collection = Annotated[CollectionName, Query()]


def _embedding(settings: Settings) -> str:
    if settings.embedding_provider == "none":
        return ""
    return f"{settings.embedding_model}:{settings.embedding_dimension}"


def _new_document(runtime: Runtime, tenant: str, doc: DocumentIn) -> NewDocument:
    settings = runtime.settings
    if len(doc.text) > settings.max_document_chars:
        raise PayloadTooLarge(
            f"document text has {len(doc.text)} characters; the limit is "
            f"{settings.max_document_chars} (CITELINE_MAX_DOCUMENT_CHARS)"
        )
    size = (doc.chunking and doc.chunking.max_chunk_size_tokens) or settings.max_chunk_size_tokens
    overlap = doc.chunking.chunk_overlap_tokens if doc.chunking else None
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
        embedding=_embedding(settings),
    )


async def _accept(runtime: Runtime, docs: list[NewDocument]) -> list[DocumentAccepted]:
    if runtime.registry.queued + len(docs) > runtime.settings.max_queued_jobs:
        raise Unavailable(
            f"the indexing queue is full ({runtime.settings.max_queued_jobs} jobs); retry later",
            retry_after=5,
        )
    accepted = await runtime.queue.accept(docs)  # registry + queue; 503 when they stall
    # The registry's own values need no validation: construct, don't parse (500 per batch).
    return [
        DocumentAccepted.model_construct(
            document_id=a.document_id, job_id=a.job_id, status=a.status, version=a.version,
            duplicate=a.duplicate,
        )
        for a in accepted
    ]  # fmt: skip


@router.post("/documents", status_code=202, response_model=DocumentAccepted)
async def create_document(
    body: DocumentIn, runtime: RuntimeDep, tenant: TenantDep
) -> DocumentAccepted:
    return (await _accept(runtime, [_new_document(runtime, tenant, body)]))[0]


async def _parse_batch(request: Request) -> BatchIn:
    """Validate a batch body in a worker thread: parsing a few MB of JSON on the event loop
    would stall every other request (one-document POSTs, queries) for tens of milliseconds."""
    raw = await request.body()
    try:
        return await asyncio.to_thread(BatchIn.model_validate_json, raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


@router.post(
    "/documents/batch",
    status_code=202,
    response_model=BatchAccepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BatchIn.model_json_schema()}},
        }
    },
)
async def create_documents(
    body: Annotated[BatchIn, Depends(_parse_batch)], runtime: RuntimeDep, tenant: TenantDep
) -> BatchAccepted:
    if len(body.documents) > runtime.settings.max_batch_documents:
        raise PayloadTooLarge(
            f"batch has {len(body.documents)} documents; the limit is "
            f"{runtime.settings.max_batch_documents} (CITELINE_MAX_BATCH_DOCUMENTS)"
        )
    docs = [_new_document(runtime, tenant, d) for d in body.documents]
    return BatchAccepted(documents=await _accept(runtime, docs))


@router.post("/index", status_code=202, response_model=DocumentAccepted)
async def index_document(body: IndexIn, runtime: RuntimeDep, tenant: TenantDep) -> DocumentAccepted:
    """The product brief's original shape: `{content, metadata, source}`."""
    doc = DocumentIn(
        id=body.id,
        text=body.content,
        title=body.title,
        source=body.source,
        metadata=body.metadata,
        collection=body.collection,
    )
    return (await _accept(runtime, [_new_document(runtime, tenant, doc)]))[0]


def _cursor(document_id: str) -> str:
    return base64.urlsafe_b64encode(document_id.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
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


@router.get("/documents", response_model=DocumentPage)
async def list_documents(
    runtime: RuntimeDep,
    tenant: TenantDep,
    collection: Collection = "default",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DocumentPage:
    rows = await runtime.registry.documents(Scope(tenant, collection), _after(cursor), limit + 1)
    page = [DocumentOut(**r) for r in rows[:limit]]
    more = len(rows) > limit
    return DocumentPage(documents=page, next_cursor=_cursor(page[-1].document_id) if more else None)


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(
    document_id: DocumentId,
    runtime: RuntimeDep,
    tenant: TenantDep,
    collection: Collection = "default",
) -> DocumentOut:
    row = await runtime.registry.document(Scope(tenant, collection), document_id)
    if row is None:
        raise NotFound(f"no document {document_id!r} in collection {collection!r}")
    return DocumentOut(**row)


@router.delete("/documents/{document_id}", response_model=DocumentDeleted)
async def delete_document(
    document_id: DocumentId,
    runtime: RuntimeDep,
    tenant: TenantDep,
    collection: Collection = "default",
) -> DocumentDeleted:
    scope = Scope(tenant, collection)
    if not await runtime.registry.delete(scope, document_id):
        raise NotFound(f"no document {document_id!r} in collection {collection!r}")
    await runtime.queue.delete_chunks(scope, document_id)
    return DocumentDeleted(document_id=document_id)
