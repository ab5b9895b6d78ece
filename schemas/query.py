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
Relevance = Annotated[float, Field(ge=0, le=1)]
MIN_RELEVANCE_DOC = (
    "answer only from passages whose `relevance` (0-1) reaches this; default: the server's "
    "CITELINE_MIN_RELEVANCE (0.45)"
)


LANGUAGE_DOC = (
    "the question's language (ISO 639-1 code, e.g. `es`, or a Snowball name) for its stopwords "
    "and stemmer; default: detected from the question"
)
Language = Annotated[str, Field(min_length=2, max_length=20, pattern=r"^[A-Za-z_]+$")]


class RankingOptions(BaseModel):
    """OpenAI's vector-store search shape: `score_threshold` is compared with `relevance`."""

    model_config = ConfigDict(extra="forbid")

    score_threshold: Relevance | None = None


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: QueryText
    collection: CollectionName = "default"
    max_results: Annotated[int, Field(ge=1, le=100)] = 10
    filters: Filter | None = None
    min_relevance: Relevance | None = Field(
        default=None, description="drop results whose `relevance` is under this (default: none)"
    )
    ranking_options: RankingOptions | None = Field(
        default=None, description="OpenAI's shape of `min_relevance`; `min_relevance` wins"
    )
    language: Language | None = Field(default=None, description=LANGUAGE_DOC)

    def relevance_floor(self) -> float | None:
        if self.min_relevance is not None:
            return self.min_relevance
        return self.ranking_options.score_threshold if self.ranking_options else None


class SearchResult(BaseModel):
    document_id: str
    chunk_id: str
    title: str | None
    source: str | None
    text: str
    start: int = Field(description="where `text` starts in the document, in code points")
    end: int = Field(description="where it ends (exclusive): `document[start:end] == text`")
    start_utf16: int | None = Field(
        default=None,
        description="`start` in UTF-16 code units, for JavaScript's `String.slice` (differs "
        "after any character beyond U+FFFF, such as an emoji); null for chunks indexed before "
        "offsets were counted both ways",
    )
    end_utf16: int | None = Field(default=None, description="`end` in UTF-16 code units")
    score: float = Field(description="the engine's raw score (BM25, cosine or fused rank)")
    relevance: float = Field(
        description="calibrated 0-1: the share of the question's information the passage holds "
        "(IDF-weighted terms), averaged with its mapped cosine similarity in hybrid search"
    )
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
    min_relevance: Relevance | None = Field(default=None, description=MIN_RELEVANCE_DOC)
    language: Language | None = Field(default=None, description=LANGUAGE_DOC)
    stream: bool = False


class StreamIn(BaseModel):
    """`POST /v1/stream`: the brief's streaming endpoint; same fields as a query."""

    model_config = ConfigDict(extra="forbid")

    question: QueryText
    history: History = Field(default_factory=list)
    collection: CollectionName = "default"
    max_results: Annotated[int, Field(ge=1, le=20)] | None = None
    filters: Filter | None = None
    min_relevance: Relevance | None = Field(default=None, description=MIN_RELEVANCE_DOC)


class Source(SearchResult):
    n: int
    cited: bool


class CitationSpan(BaseModel):
    """Where the marker `[n]` stands in the *answer* (not in the document: a source's own
    `start`/`end` place its passage in the document): `answer[start:end] == f"[{n}]"`."""

    n: int
    start: int = Field(description="offset of the marker in the answer, in code points")
    end: int
    start_utf16: int = Field(description="the same offset in UTF-16 code units (JavaScript)")
    end_utf16: int


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
