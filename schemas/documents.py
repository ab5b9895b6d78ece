"""Index API: documents in, jobs out."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import CollectionName, DocumentId, Metadata, SourceRef, Title
from schemas.filters import Filter
from schemas.jobs import JobStatus

# Hard caps of the wire format; each deployment's own limits (CITELINE_MAX_DOCUMENT_CHARS,
# CITELINE_MAX_BATCH_DOCUMENTS) are at most these and are what a request meets (413 past them).
MAX_DOCUMENT_CHARS = 50_000_000
MAX_BATCH_DOCUMENTS = 10_000

DocumentText = Annotated[str, Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)]


class ChunkingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_chunk_size_tokens: Annotated[int, Field(ge=64, le=4096)] | None = None
    chunk_overlap_tokens: Annotated[int, Field(ge=0, le=2048)] | None = None

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> Self:
        size, overlap = self.max_chunk_size_tokens, self.chunk_overlap_tokens
        if size is not None and overlap is not None and overlap > size // 2:
            raise ValueError("chunk_overlap_tokens must be at most half of max_chunk_size_tokens")
        return self


class DocumentIn(BaseModel):
    """One document to index. Without `id`, the id is derived from the content."""

    model_config = ConfigDict(extra="forbid")

    id: DocumentId | None = None
    text: DocumentText
    title: Title | None = None
    source: SourceRef | None = None
    metadata: Metadata = Field(default_factory=dict)
    collection: CollectionName = "default"
    chunking: ChunkingOptions | None = None


class FileOptions(BaseModel):
    """The fields of a multipart upload besides its `file` part(s)."""

    model_config = ConfigDict(extra="forbid")

    id: DocumentId | None = None
    title: Title | None = None
    source: SourceRef | None = None
    metadata: Metadata = Field(default_factory=dict)
    collection: CollectionName = "default"
    chunking: ChunkingOptions | None = None


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: Annotated[list[DocumentIn], Field(min_length=1, max_length=MAX_BATCH_DOCUMENTS)]


class IndexIn(BaseModel):
    """The product brief's original shape for `POST /v1/index`."""

    model_config = ConfigDict(extra="forbid")

    content: DocumentText
    metadata: Metadata = Field(default_factory=dict)
    source: SourceRef | None = None
    collection: CollectionName = "default"
    id: DocumentId | None = None
    title: Title | None = None


class DocumentAccepted(BaseModel):
    document_id: str
    job_id: str
    status: JobStatus
    version: str
    duplicate: bool = Field(description="true when this exact content was already accepted")


class BatchAccepted(BaseModel):
    batch_id: str = Field(description="GET /v1/batches/{batch_id} counts the batch's jobs")
    documents: list[DocumentAccepted]


DocumentState = Literal["indexing", "indexed", "failed"]


class DocumentOut(BaseModel):
    document_id: str
    collection: str
    title: str | None
    source: str | None
    metadata: Metadata
    version: str
    media_type: str = Field(description="text/plain for text posted as JSON")
    filename: str | None = None
    sha256: str | None = Field(
        default=None, description="SHA-256 of the uploaded file (hex); null for JSON text"
    )
    chars: int
    chunks: int
    state: DocumentState
    job_id: str
    created_at: float
    updated_at: float


class DocumentPage(BaseModel):
    documents: list[DocumentOut]
    next_cursor: str | None


class DocumentDeleted(BaseModel):
    document_id: str
    deleted: Literal[True] = True


class DeleteMatching(BaseModel):
    """`POST /v1/documents/delete`: the documents of a collection whose metadata matches."""

    model_config = ConfigDict(extra="forbid")

    collection: CollectionName = "default"
    filters: Filter


class DocumentsDeleted(BaseModel):
    document_ids: list[str]
    more: bool = Field(description="more documents match: call again")


class CollectionDeleted(BaseModel):
    collection: str
    documents: int = Field(description="documents deleted")
