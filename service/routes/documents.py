"""Index API: accept documents as JSON or files (202 + job), list, read, serve and delete them
(by id, by collection, by filter). Writes need the `write` scope, reads `read`; every
collection named is checked against the key's list."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response

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
    FileOptions,
    IndexIn,
)
from service.auth.principal import Principal
from service.catalog.base import Accepted
from service.deps import DocumentsDep, ReadAccess, WriteAccess
from service.documents import Documents, new_batch_id
from service.errors import BadRequest, NotFound, problem_responses
from service.opened_file import OpenedFileResponse, open_file
from service.parsing.model import MEDIA_TYPES
from service.routes.forms import Form, form_body, is_multipart, json_body
from service.uploads import Upload, check_file, file_options

router = APIRouter(prefix="/v1", tags=["documents"])

Collection = Annotated[CollectionName, Query()]
ACCEPT_ERRORS = problem_responses(400, 413, 415, 503)
DELETE_MATCHING_LIMIT = 1000

_FIELDS: dict[str, Any] = {
    "collection": {"type": "string"},
    "metadata": {"type": "string", "description": "a JSON object"},
    "chunking": {"type": "string", "description": 'JSON, e.g. {"max_chunk_size_tokens": 256}'},
}
UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "id": {"type": "string"}, "title": {"type": "string"}, "source": {"type": "string"},
        **_FIELDS,
    },
}  # fmt: skip
BATCH_UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        **_FIELDS,
    },
}


def _body(json_schema: str, form_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{json_schema}"}},
                "multipart/form-data": {"schema": form_schema},
            },
        }
    }


def _accepted(accepted: list[Accepted]) -> list[DocumentAccepted]:
    # The registry's own values need no validation: construct, don't parse (500 per batch).
    return [
        DocumentAccepted.model_construct(
            document_id=a.document_id, job_id=a.job_id, status=a.status, version=a.version,
            duplicate=a.duplicate,
        )
        for a in accepted
    ]  # fmt: skip


async def _form(request: Request, documents: Documents, max_files: int) -> Form:
    settings = documents.settings
    form = await form_body(
        request, max_files=max_files, max_fields=settings.max_form_fields,
        max_field_bytes=settings.max_form_field_bytes,
    )  # fmt: skip
    if not form.files:
        raise BadRequest("a multipart upload needs a `file` part with a filename")
    if any(p.name != "file" for p in form.files):
        raise BadRequest("files go in parts named `file`")
    return form


async def _accept_files(
    documents: Documents,
    caller: Principal,
    form: Form,
    options: FileOptions,
    *,
    batch_id: str | None,
) -> list[Accepted]:
    settings = documents.settings
    uploads = [Upload(bytes(p.data), p.filename, p.content_type) for p in form.files]
    # Hashing and zip listings of tens of MB are off the event loop.
    checked = await asyncio.to_thread(lambda: [check_file(settings, u) for u in uploads])
    single = batch_id is None
    scope = caller.scope_of(options.collection)
    docs = [(documents.new_file(scope, f, options, with_id=single), f) for f in checked]
    return await documents.accept_files(docs, batch_id=batch_id)


@router.post(
    "/documents",
    status_code=202,
    response_model=DocumentAccepted,
    responses=ACCEPT_ERRORS,
    openapi_extra=_body("DocumentIn", UPLOAD_SCHEMA),
)
async def create_document(
    request: Request, documents: DocumentsDep, caller: WriteAccess
) -> DocumentAccepted:
    """JSON `{text, ...}`, or multipart/form-data with one `file` (PDF, DOCX, PPTX, HTML,
    Markdown, text) and optional `id`, `title`, `source`, `collection`, `metadata` and
    `chunking` (JSON strings). Answers before anything is parsed."""
    if is_multipart(request):
        form = await _form(request, documents, max_files=1)
        options = file_options(form.fields)
        return _accepted(await _accept_files(documents, caller, form, options, batch_id=None))[0]
    body = await json_body(request, DocumentIn)
    return _accepted(
        await documents.accept([documents.new_document(caller.scope_of(body.collection), body)])
    )[0]


@router.post(
    "/documents/batch",
    status_code=202,
    response_model=BatchAccepted,
    responses=ACCEPT_ERRORS,
    openapi_extra=_body("BatchIn", BATCH_UPLOAD_SCHEMA),
)
async def create_documents(
    request: Request, documents: DocumentsDep, caller: WriteAccess
) -> BatchAccepted:
    """JSON `{documents: [...]}`, or multipart/form-data with several `file` parts sharing
    `collection`, `metadata` and `chunking`. The answer's `batch_id` follows them all."""
    batch_id = new_batch_id()
    if is_multipart(request):
        limit = documents.settings.max_batch_documents
        form = await _form(request, documents, max_files=limit)
        options = file_options(form.fields)
        if options.id or options.title or options.source:
            raise BadRequest("id, title and source name one document: upload it on its own")
        accepted = await _accept_files(documents, caller, form, options, batch_id=batch_id)
    else:
        body = await json_body(request, BatchIn)
        documents.check_batch(len(body.documents))
        docs = [documents.new_document(caller.scope_of(d.collection), d) for d in body.documents]
        accepted = await documents.accept(docs, batch_id=batch_id)
    return BatchAccepted(batch_id=batch_id, documents=_accepted(accepted))


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
        documents=[_document(r) for r in page.documents], next_cursor=page.next_cursor
    )


def _document(row: dict[str, Any]) -> DocumentOut:
    return DocumentOut(**{**row, "media_type": row["media_type"] or "text/plain"})


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
    return _document(row)


TEXT_PLAIN = "text/plain; charset=utf-8"
_FILE_TYPES = {t: {"schema": {"type": "string", "format": "binary"}} for t in MEDIA_TYPES.values()}


@router.get(
    "/documents/{document_id}/content",
    response_class=Response,
    responses={
        200: {
            "description": "the canonical text: every chunk's start/end index into it",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problem_responses(404, 503),
    },
)
async def document_content(
    document_id: DocumentId,
    documents: DocumentsDep,
    caller: ReadAccess,
    collection: Collection = "default",
) -> Response:
    """The served version's canonical text (`text[start:end] == source.text` for its chunks);
    the `X-Document-Version` header says which version."""
    data, version = await documents.content(caller.scope_of(collection), document_id)
    return Response(data, media_type=TEXT_PLAIN, headers={"X-Document-Version": version})


@router.get(
    "/documents/{document_id}/file",
    response_class=FileResponse,
    responses={
        200: {"description": "the original file, as uploaded", "content": _FILE_TYPES},
        **problem_responses(404, 503),
    },
)
async def document_file(
    document_id: DocumentId,
    documents: DocumentsDep,
    caller: ReadAccess,
    collection: Collection = "default",
) -> FileResponse:
    """The served version's original file with its media type (a PDF opens at `#page=N`)."""
    original = await documents.original(caller.scope_of(collection), document_id)
    handle = await open_file(original.path)
    if handle is None:  # deleted since
        raise NotFound(f"no document {document_id!r} in collection {collection!r}")
    inline = original.media_type == "application/pdf"  # the browser's viewer, at #page=N
    headers = {"X-Document-Version": original.version, "X-Content-Type-Options": "nosniff"}
    if not inline:  # an uploaded HTML page must never run as this origin's page
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return OpenedFileResponse(
        handle,
        media_type=original.media_type,
        filename=original.filename or f"{document_id}",
        content_disposition_type="inline" if inline else "attachment",
        headers=headers,
    )


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
