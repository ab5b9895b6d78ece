"""Search (no generation), cited answers as JSON or SSE, and the brief's `/v1/stream`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter

from schemas.query import (
    CitationSpan,
    QueryIn,
    QueryOut,
    SearchIn,
    SearchOut,
    SearchResult,
    Source,
    StreamIn,
)
from service.deps import AskerDep, RetrieverDep, SettingsDep, TenantDep
from service.errors import ServiceError, Unavailable, problem_responses
from service.query.ask import Asker
from service.query.events import (
    AnswerEvent,
    CitationsEvent,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    UsageEvent,
    usage_out,
)
from service.store.base import Hit, Scope
from service.streams.live import LiveResponse
from service.streams.sse import SSE_RESPONSE, encode_sse, sse_response

router = APIRouter(prefix="/v1", tags=["query"])


def _result(hit: Hit) -> SearchResult:
    return SearchResult(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        source=hit.source,
        text=hit.text,
        start=hit.start,
        end=hit.end,
        score=hit.score,
        metadata=hit.metadata,
    )


ANSWER_ERRORS = problem_responses(413, 502, 503, 504)


@router.post("/search", response_model=SearchOut, responses=problem_responses(503))
async def search(body: SearchIn, retriever: RetrieverDep, tenant: TenantDep) -> SearchOut:
    hits = await retriever.search(
        Scope(tenant, body.collection), body.query, body.max_results, body.filters
    )
    return SearchOut(results=[_result(h) for h in hits])


async def _collect(events: AsyncIterator[AnswerEvent]) -> QueryOut:
    """Fold an answer run into one JSON body; an error event becomes the problem response."""
    sources: list[Source] = []
    citations = CitationsEvent([])
    usage = UsageEvent(0, 0)
    async for event in events:
        match event:
            case SourcesEvent():
                sources = event.sources
            case CitationsEvent():
                citations = event
            case UsageEvent():
                usage = event
            case ErrorEvent(message, status, retry_after):
                if retry_after is not None:
                    raise Unavailable(message, retry_after=retry_after)
                raise ServiceError(message, status=status)
            case DoneEvent():
                cited, spans = set(citations.cited), citations.spans
                return QueryOut(
                    answer=event.answer,
                    sources=[s.model_copy(update={"cited": s.n in cited}) for s in sources],
                    citations=[CitationSpan(n=c.n, start=c.start, end=c.end) for c in spans],
                    usage=usage_out(usage),
                    tokens_used=event.tokens_used,
                    latency_ms=round(event.latency_ms, 2),
                    model=event.model,
                )
    raise ServiceError("the answer ended without a result")


async def _answer(
    body: QueryIn | StreamIn, asker: Asker, tenant: str
) -> AsyncIterator[AnswerEvent]:
    return await asker.ask(
        Scope(tenant, body.collection),
        body.question,
        body.max_results,
        body.filters,
        history=body.history,
    )


@router.post("/query", response_model=QueryOut, responses={**SSE_RESPONSE, **ANSWER_ERRORS})
async def query(
    body: QueryIn, asker: AskerDep, settings: SettingsDep, tenant: TenantDep
) -> QueryOut | LiveResponse:
    """A cited answer as one JSON body, or with `stream: true` as SSE (sources, delta...,
    citations, usage, done, then `data: [DONE]`)."""
    events = await _answer(body, asker, tenant)
    if body.stream:
        return sse_response(encode_sse(events), settings.sse_ping_interval_s)
    return await _collect(events)


@router.post("/stream", responses={**SSE_RESPONSE, **ANSWER_ERRORS})
async def stream(
    body: StreamIn, asker: AskerDep, settings: SettingsDep, tenant: TenantDep
) -> LiveResponse:
    """Deltas as plain `data: {"text": ...}` messages; sources, usage and done as named events."""
    events = await _answer(body, asker, tenant)
    return sse_response(encode_sse(events, named_deltas=False), settings.sse_ping_interval_s)
