"""Index API: accept documents (202 + job), list, read and delete them."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from schemas.common import CollectionName, DocumentId
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
from service.catalog.base import Accepted
from service.deps import DocumentsDep, TenantDep
from service.errors import NotFound, problem_responses
from service.store.base import Scope

router = APIRouter(prefix="/v1", tags=["documents"])

Collection = Annotated[CollectionName, Query()]
ACCEPT_ERRORS = problem_responses(400, 413, 503)


def _accepted(accepted: list[Accepted]) -> list[DocumentAccepted]:
    # The registry's own values need no validation: construct, don't parse (500 per batch).
    return [
        DocumentAccepted.model_construct(
            document_id=a.document_id, job_id=a.job_id, status=a.status, version=a.version,
            duplicate=a.duplicate,
        )
        for a in accepted
    ]  # fmt: skip


@router.post(
    "/documents", status_code=202, response_model=DocumentAccepted, responses=ACCEPT_ERRORS
)
async def create_document(
    body: DocumentIn, documents: DocumentsDep, tenant: TenantDep
) -> DocumentAccepted:
    return _accepted(await documents.accept([documents.new_document(tenant, body)]))[0]


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
    responses=ACCEPT_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}}},
        }
    },
)
async def create_documents(
    body: Annotated[BatchIn, Depends(_parse_batch)], documents: DocumentsDep, tenant: TenantDep
) -> BatchAccepted:
    documents.check_batch(len(body.documents))
    docs = [documents.new_document(tenant, d) for d in body.documents]
    return BatchAccepted(documents=_accepted(await documents.accept(docs)))


@router.post("/index", status_code=202, response_model=DocumentAccepted, responses=ACCEPT_ERRORS)
async def index_document(
    body: IndexIn, documents: DocumentsDep, tenant: TenantDep
) -> DocumentAccepted:
    """The product brief's original shape: `{content, metadata, source}`."""
    doc = DocumentIn(
        id=body.id,
        text=body.content,
        title=body.title,
        source=body.source,
        metadata=body.metadata,
        collection=body.collection,
    )
    return _accepted(await documents.accept([documents.new_document(tenant, doc)]))[0]


@router.get("/documents", response_model=DocumentPage, responses=problem_responses(400, 503))
async def list_documents(
    documents: DocumentsDep,
    tenant: TenantDep,
    collection: Collection = "default",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DocumentPage:
    page = await documents.page(Scope(tenant, collection), cursor, limit)
    return DocumentPage(
        documents=[DocumentOut(**r) for r in page.documents], next_cursor=page.next_cursor
    )


@router.get(
    "/documents/{document_id}", response_model=DocumentOut, responses=problem_responses(404, 503)
)
async def get_document(
    document_id: DocumentId,
    documents: DocumentsDep,
    tenant: TenantDep,
    collection: Collection = "default",
) -> DocumentOut:
    row = await documents.get(Scope(tenant, collection), document_id)
    if row is None:
        raise NotFound(f"no document {document_id!r} in collection {collection!r}")
    return DocumentOut(**row)


@router.delete(
    "/documents/{document_id}",
    response_model=DocumentDeleted,
    responses=problem_responses(404, 503),
)
async def delete_document(
    document_id: DocumentId,
    documents: DocumentsDep,
    tenant: TenantDep,
    collection: Collection = "default",
) -> DocumentDeleted:
    if not await documents.delete(Scope(tenant, collection), document_id):
        raise NotFound(f"no document {document_id!r} in collection {collection!r}")
    return DocumentDeleted(document_id=document_id)
