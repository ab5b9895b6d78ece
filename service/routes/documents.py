"""Index API: accept documents (202 + job), list, read and delete them (by id, by collection,
by filter). Writes need the `write` scope, reads `read`; every collection named is checked
against the key's list."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from schemas.common import CollectionName, DocumentId
from schemas.documents import (
    BatchAccepted,
    BatchIn,
    CollectionDeleted,
    DeleteMatching,
    DocumentAccepted,
    DocumentDeleted,
    DocumentIn,
    DocumentOut,
    DocumentPage,
    DocumentsDeleted,
    IndexIn,
)
from service.catalog.base import Accepted
from service.deps import DocumentsDep, ReadAccess, WriteAccess
from service.errors import NotFound, problem_responses

router = APIRouter(prefix="/v1", tags=["documents"])

Collection = Annotated[CollectionName, Query()]
ACCEPT_ERRORS = problem_responses(400, 413, 503)
DELETE_MATCHING_LIMIT = 1000


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
    body: DocumentIn, documents: DocumentsDep, caller: WriteAccess
) -> DocumentAccepted:
    doc = documents.new_document(caller.scope_of(body.collection), body)
    return _accepted(await documents.accept([doc]))[0]


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
    body: Annotated[BatchIn, Depends(_parse_batch)], documents: DocumentsDep, caller: WriteAccess
) -> BatchAccepted:
    documents.check_batch(len(body.documents))
    docs = [documents.new_document(caller.scope_of(d.collection), d) for d in body.documents]
    return BatchAccepted(documents=_accepted(await documents.accept(docs)))


@router.post("/index", status_code=202, response_model=DocumentAccepted, responses=ACCEPT_ERRORS)
async def index_document(
    body: IndexIn, documents: DocumentsDep, caller: WriteAccess
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
    new = documents.new_document(caller.scope_of(doc.collection), doc)
    return _accepted(await documents.accept([new]))[0]


@router.get("/documents", response_model=DocumentPage, responses=problem_responses(400, 503))
async def list_documents(
    documents: DocumentsDep,
    caller: ReadAccess,
    collection: Collection = "default",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DocumentPage:
    page = await documents.page(caller.scope_of(collection), cursor, limit)
    return DocumentPage(
        documents=[DocumentOut(**r) for r in page.documents], next_cursor=page.next_cursor
    )


@router.get(
    "/documents/{document_id}", response_model=DocumentOut, responses=problem_responses(404, 503)
)
async def get_document(
    document_id: DocumentId,
    documents: DocumentsDep,
    caller: ReadAccess,
    collection: Collection = "default",
) -> DocumentOut:
    row = await documents.get(caller.scope_of(collection), document_id)
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
    caller: WriteAccess,
    collection: Collection = "default",
) -> DocumentDeleted:
    """After the delete nothing serves the document; its chunks follow at once, and
    compaction removes what they left on disk."""
    if not await documents.delete(caller.scope_of(collection), document_id):
        raise NotFound(f"no document {document_id!r} in collection {collection!r}")
    return DocumentDeleted(document_id=document_id)


@router.post("/documents/delete", response_model=DocumentsDeleted, responses=problem_responses(503))
async def delete_matching(
    body: DeleteMatching, documents: DocumentsDep, caller: WriteAccess
) -> DocumentsDeleted:
    """Delete the documents whose metadata matches `filters` (the search filter grammar), at
    most 1000 per call: repeat while `more` is true."""
    deleted, more = await documents.delete_matching(
        caller.scope_of(body.collection), body.filters, DELETE_MATCHING_LIMIT
    )
    return DocumentsDeleted(document_ids=deleted, more=more)


@router.delete(
    "/collections/{collection}",
    response_model=CollectionDeleted,
    responses=problem_responses(503),
)
async def delete_collection(
    collection: Annotated[CollectionName, Path()], documents: DocumentsDep, caller: WriteAccess
) -> CollectionDeleted:
    """Delete every document of the collection (of the caller's tenant)."""
    deleted = await documents.delete_collection(caller.scope_of(collection))
    return CollectionDeleted(collection=collection, documents=deleted)
