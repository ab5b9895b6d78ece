"""Search (no generation), cited answers as JSON or SSE, and the brief's `/v1/stream`."""

from __future__ import annotations

import dataclasses
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
from service.auth.principal import Principal
from service.deps import AskerDep, MeteringDep, ReadAccess, RetrieverDep, SettingsDep, StreamsDep
from service.embeddings import languages
from service.errors import ServiceError, problem_responses
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
from service.quotas.metering import Metering
from service.store.base import Hit
from service.streams.common import error_for
from service.streams.live import LiveResponse
from service.streams.sse import SSE_RESPONSE, encode_sse, sse_response

router = APIRouter(prefix="/v1", tags=["query"])


def search_result(hit: Hit) -> SearchResult:
    return SearchResult(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        source=hit.source,
        text=hit.text,
        start=hit.start,
        end=hit.end,
        start_utf16=hit.start_utf16,
        end_utf16=hit.end_utf16,
        score=hit.score,
        relevance=hit.relevance or 0.0,
        metadata=hit.metadata,
        page=hit.page,
        page_end=hit.page_end,
        page_label=hit.page_label,
        section=hit.section,
    )


ANSWER_ERRORS = problem_responses(413, 502, 503, 504)


def check_language(language: str | None) -> str | None:
    """The request's language, or a 422 naming the known ones."""
    if language is None or language.lower() in languages.LANGUAGES:
        return language
    known = ", ".join(sorted(languages.SNOWBALL))
    raise ServiceError(f"unknown language {language!r}; known: {known}", status=422)


@router.post("/search", response_model=SearchOut, responses=problem_responses(502, 503))
async def search(body: SearchIn, retriever: RetrieverDep, caller: ReadAccess) -> SearchOut:
    scope = caller.scope_of(body.collection)
    floor = body.relevance_floor()
    language = check_language(body.language)
    hits = await retriever.search(
        scope, body.query, body.max_results, body.filters, floor, language
    )
    return SearchOut(results=[search_result(h) for h in hits])


async def collect_answer(events: AsyncIterator[AnswerEvent]) -> QueryOut:
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
            case ErrorEvent():
                raise error_for(event)
            case DoneEvent():
                cited, spans = set(citations.cited), citations.spans
                return QueryOut(
                    answer=event.answer,
                    sources=[s.model_copy(update={"cited": s.n in cited}) for s in sources],
                    citations=[CitationSpan(**dataclasses.asdict(c)) for c in spans],
                    usage=usage_out(usage),
                    tokens_used=event.tokens_used,
                    latency_ms=round(event.latency_ms, 2),
                    model=event.model,
                )
    raise ServiceError("the answer ended without a result")


async def answer_events(
    body: QueryIn | StreamIn, asker: Asker, metering: Metering, caller: Principal
) -> AsyncIterator[AnswerEvent]:
    """The answer run in the caller's scope, its tokens charged to the tenant (429 when its
    budget is already spent)."""
    scope = caller.scope_of(body.collection)
    await metering.check(caller.tenant)
    events = await asker.ask(
        scope,
        body.question,
        body.max_results,
        body.filters,
        history=body.history,
        min_relevance=body.min_relevance,
        language=check_language(body.language) if isinstance(body, QueryIn) else None,
    )
    return metering.metered(events, caller.tenant)


@router.post("/query", response_model=QueryOut, responses={**SSE_RESPONSE, **ANSWER_ERRORS})
async def query(
    body: QueryIn,
    asker: AskerDep,
    settings: SettingsDep,
    metering: MeteringDep,
    streams: StreamsDep,
    caller: ReadAccess,
) -> QueryOut | LiveResponse:
    """A cited answer as one JSON body, or with `stream: true` as SSE (sources, delta...,
    citations, usage, done, then `data: [DONE]`)."""
    events = await answer_events(body, asker, metering, caller)
    if body.stream:
        slot = streams.take(caller)
        return sse_response(encode_sse(events), settings.sse_ping_interval_s, slot.release)
    return await collect_answer(events)


@router.post("/stream", responses={**SSE_RESPONSE, **ANSWER_ERRORS})
async def stream(
    body: StreamIn,
    asker: AskerDep,
    settings: SettingsDep,
    metering: MeteringDep,
    streams: StreamsDep,
    caller: ReadAccess,
) -> LiveResponse:
    """Deltas as plain `data: {"text": ...}` messages; sources, usage and done as named events."""
    events = await answer_events(body, asker, metering, caller)
    slot = streams.take(caller)
    frames = encode_sse(events, named_deltas=False)
    return sse_response(frames, settings.sse_ping_interval_s, slot.release)
