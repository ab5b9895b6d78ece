"""`POST /v1/evaluations`: questions with what should come back, scored by the service itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import CollectionName
from schemas.query import QueryText, Relevance

MAX_CASES = 5000
MAX_EXPECTED_IDS = 1000

EvaluationStatus = Literal["queued", "running", "completed", "failed"]


class EvaluationCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: QueryText
    expected_document_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=512)]],
        Field(max_length=MAX_EXPECTED_IDS),
    ] = Field(default_factory=list, description="the documents that answer it (any is right)")
    expected_answer: Annotated[str, Field(max_length=4000)] | None = None
    answerable: bool | None = Field(
        default=None,
        description="false: the right answer is 'not found'; default: true when "
        "`expected_document_ids` or `expected_answer` is given",
    )

    def is_answerable(self) -> bool:
        if self.answerable is not None:
            return self.answerable
        return bool(self.expected_document_ids) or self.expected_answer is not None


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: CollectionName = "default"
    cases: Annotated[list[EvaluationCase], Field(min_length=1, max_length=MAX_CASES)]
    max_results: Annotated[int, Field(ge=1, le=20)] | None = Field(
        default=None, description="sources per answer (default: the server's)"
    )
    min_relevance: Relevance | None = Field(
        default=None, description="the abstention threshold to evaluate (default: the server's)"
    )


class CaseResult(BaseModel):
    question: str
    answerable: bool
    abstained: bool = Field(description="answered 'not found' (no sources)")
    answer: str
    ranked_document_ids: list[str] = Field(description="retrieval's top 10 documents, in order")
    source_document_ids: list[str] = Field(description="the documents the answer was given")
    top_relevance: float | None
    hit: bool | None = Field(description="an expected document among the sources")
    reciprocal_rank: float | None
    ndcg_at_10: float | None
    citations_valid: bool = Field(description="every cited span is verbatim in its document")
    exact_match: bool | None
    token_f1: float | None
    answer_contains_expected: bool | None


class EvaluationOut(BaseModel):
    id: str
    status: EvaluationStatus
    collection: str
    cases_total: int
    cases_done: int
    settings: dict[str, Any] = Field(description="what produced the run, and its hash")
    aggregates: dict[str, float | int | None] | None = None
    results: list[CaseResult] | None = None
    error: str | None = None
    created_at: float
    finished_at: float | None = None
