"""Search and query API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import CollectionName
from schemas.filters import Filter

MAX_QUESTION_CHARS = 4000
MAX_TURNS = 50
MAX_TURN_CHARS = 16_000

QueryText = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: QueryText
    collection: CollectionName = "default"
    max_results: Annotated[int, Field(ge=1, le=100)] = 10
    filters: Filter | None = None


class SearchResult(BaseModel):
    document_id: str
    chunk_id: str
    title: str | None
    source: str | None
    text: str
    start: int
    end: int
    score: float
    metadata: dict[str, Any]
    page: int | None = Field(
        default=None, description="files: the 1-based page (slide) the passage starts on"
    )
    page_end: int | None = Field(default=None, description="its last page, when it spans pages")
    page_label: str | None = Field(default=None, description="the printed label of `page`")
    section: str | None = Field(default=None, description="heading path, e.g. `5. Basics › 5.6`")


class SearchOut(BaseModel):
    results: list[SearchResult]


class Turn(BaseModel):
    """One earlier turn of the conversation; follow-up questions are rewritten with them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=MAX_TURN_CHARS)]


History = Annotated[list[Turn], Field(max_length=MAX_TURNS)]


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: QueryText
    history: History = Field(default_factory=list)
    collection: CollectionName = "default"
    max_results: Annotated[int, Field(ge=1, le=20)] | None = None
    filters: Filter | None = None
    stream: bool = False


class StreamIn(BaseModel):
    """`POST /v1/stream`: the brief's streaming endpoint; same fields as a query."""

    model_config = ConfigDict(extra="forbid")

    question: QueryText
    history: History = Field(default_factory=list)
    collection: CollectionName = "default"
    max_results: Annotated[int, Field(ge=1, le=20)] | None = None
    filters: Filter | None = None


class Source(SearchResult):
    n: int
    cited: bool


class CitationSpan(BaseModel):
    """Where the marker `[n]` stands in the answer: `answer[start:end] == f"[{n}]"`."""

    n: int
    start: int
    end: int


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int
    total_tokens: int
    cost_usd: float | None = Field(
        description="estimate from CITELINE_MODEL_PRICES; null if unpriced"
    )


class QueryOut(BaseModel):
    answer: str
    sources: list[Source]
    citations: list[CitationSpan]
    usage: UsageOut
    tokens_used: int
    latency_ms: float
    model: str
