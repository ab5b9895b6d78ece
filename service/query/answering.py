"""An answer run as a sequence of events, from retrieved hits and any answerer.

Every wire format (JSON body, SSE, the AI SDK and OpenAI streams) is an encoder over the
events `answer_events` yields: sources first, then text deltas, citations, usage, done. Any
answerer's text passes through one CitationFilter, so a marker that points at no source the
answerer was given never reaches a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.query import Source
from service.llm.base import LLMError, LLMUnavailable, TurnLike, Usage
from service.query.citations import CitationFilter
from service.query.events import (
    AnswerEvent,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    SourcesEvent,
    UsageEvent,
)
from service.query.prompting import PromptTooLarge
from service.request_context import request_id
from service.store.base import Hit

log = logging.getLogger("citeline.answer")

NOT_FOUND = "The indexed documents do not answer this question."


@dataclass
class Meter:
    """Tokens one answer run spends: question rewrite, query embedding and the answer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0

    def add(self, usage: Usage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens


CostFn = Callable[[str, Meter], float | None]


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """What an answerer will do: the source numbers it may cite, and its text then Usage."""

    citable: list[int]
    stream: AsyncIterator[str | Usage]


class Answerer(Protocol):
    model: str

    async def plan(
        self, question: str, sources: Sequence[Source], history: Sequence[TurnLike]
    ) -> AnswerPlan:
        """Raises PromptTooLarge when even the question does not fit the model."""
        ...


def to_sources(hits: Sequence[Hit]) -> list[Source]:
    return [
        Source(
            n=n, document_id=h.document_id, chunk_id=h.chunk_id, title=h.title,
            source=h.source, text=h.text, start=h.start, end=h.end, start_utf16=h.start_utf16,
            end_utf16=h.end_utf16, score=h.score,
            relevance=h.relevance or 0.0,
            metadata=h.metadata, cited=False, page=h.page, page_end=h.page_end,
            page_label=h.page_label, section=h.section,
        )
        for n, h in enumerate(hits, start=1)
    ]  # fmt: skip


# What a client is told when the model fails, per class: nothing of the provider's own words.
PUBLIC_ERRORS = {
    502: "The language model failed to answer.",
    503: "The language model is unavailable; retry later.",
    504: "The language model did not answer in time.",
}


def _error(exc: LLMError | PromptTooLarge) -> ErrorEvent:
    """The run's error event: a fixed message per class naming the request id; the provider's
    detail goes to the server log under that id."""
    if isinstance(exc, PromptTooLarge):
        return ErrorEvent(str(exc), 413)
    retry_after = exc.retry_after if isinstance(exc, LLMUnavailable) else None
    log.warning(
        "answer.llm_failed",
        extra={"status": exc.http_status, "error": str(exc), "detail": exc.detail},
    )
    message = PUBLIC_ERRORS.get(exc.http_status, PUBLIC_ERRORS[502])
    if rid := request_id():
        message += f" (request {rid}: the server log has the details)"
    return ErrorEvent(message, exc.http_status, retry_after)


async def answer_events(
    question: str,
    hits: Sequence[Hit],
    answerer: Answerer,
    *,
    started: float,
    meter: Meter,
    cost: CostFn,
    history: Sequence[TurnLike] = (),
) -> AsyncIterator[AnswerEvent]:
    """One answer run; with no sources, the fixed not-found answer and zero model calls."""
    sources = to_sources(hits)
    yield SourcesEvent(sources)
    model, parts = answerer.model, []
    citations = CitationFilter([])
    if not sources:
        parts.append(NOT_FOUND)
        yield DeltaEvent(NOT_FOUND)
    else:
        try:
            plan = await answerer.plan(question, sources, history)
            citations = CitationFilter(plan.citable)
            async for item in plan.stream:
                if isinstance(item, Usage):
                    meter.add(item)
                    model = item.model or model
                elif text := citations.feed(item):
                    parts.append(text)
                    yield DeltaEvent(text)
        except (LLMError, PromptTooLarge) as exc:
            yield _error(exc)
            return
        if tail := citations.flush():
            parts.append(tail)
            yield DeltaEvent(tail)
    yield CitationsEvent(list(citations.cited), list(citations.spans))
    usage = UsageEvent(
        meter.prompt_tokens, meter.completion_tokens, meter.embedding_tokens, cost(model, meter)
    )
    yield usage
    latency_ms = (time.perf_counter() - started) * 1000
    yield DoneEvent("".join(parts), model, latency_ms, usage.total_tokens)
