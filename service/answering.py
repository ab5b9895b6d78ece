"""An answer run as a sequence of events, and the extractive answerer used without an LLM.

Every wire format (JSON body, SSE, the AI SDK and OpenAI streams) is an encoder over the
events `answer_events` yields: sources first, then text deltas, citations, usage, done. Any
answerer's text passes through one CitationFilter, so a marker that points at no source the
answerer was given never reaches a client.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.query import Source, UsageOut
from service.citations import Citation, CitationFilter
from service.embeddings.sparse import Bm25Encoder
from service.indexing.tokens import count_tokens
from service.llm.base import LLMError, LLMUnavailable, TurnLike, Usage
from service.prompting import PromptTooLarge
from service.store.base import Hit

NOT_FOUND = "The indexed documents do not answer this question."
EXTRACTIVE_MODEL = "extractive"

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    sources: list[Source]


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    text: str


@dataclass(frozen=True, slots=True)
class CitationsEvent:
    cited: list[int]
    spans: list[Citation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UsageEvent:
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int = 0
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens + self.embedding_tokens


@dataclass(frozen=True, slots=True)
class DoneEvent:
    answer: str
    model: str
    latency_ms: float
    tokens_used: int


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    message: str
    status: int = 500
    retry_after: float | None = None


def usage_out(event: UsageEvent) -> UsageOut:
    return UsageOut(
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        embedding_tokens=event.embedding_tokens,
        total_tokens=event.total_tokens,
        cost_usd=event.cost_usd,
    )


AnswerEvent = SourcesEvent | DeltaEvent | CitationsEvent | UsageEvent | DoneEvent | ErrorEvent


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
            source=h.source, text=h.text, start=h.start, end=h.end, score=h.score,
            metadata=h.metadata, cited=False,
        )
        for n, h in enumerate(hits, start=1)
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Sentence:
    n: int
    position: int
    text: str
    overlap: int


class ExtractiveAnswerer:
    """Answers with the source sentences that share most terms with the question, cited."""

    model = EXTRACTIVE_MODEL

    def __init__(self, encoder: Bm25Encoder, max_tokens: int, max_sentences: int = 3) -> None:
        self.encoder = encoder
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences

    def compose(self, question: str, sources: Sequence[Source]) -> list[str]:
        """The answer as pieces: each chosen sentence followed by its source's marker."""
        wanted = set(self.encoder.encode_query(question).indices)
        candidates: list[_Sentence] = []
        for src in sources:
            for pos, m in enumerate(_SENTENCE.finditer(src.text)):
                text = " ".join(m.group().split())
                if len(text) < 3:
                    continue
                terms = set(self.encoder.encode_query(text).indices)
                candidates.append(_Sentence(src.n, pos, text, len(terms & wanted)))
        ranked = sorted(candidates, key=lambda s: (-s.overlap, s.n, s.position))
        chosen: list[_Sentence] = []
        budget = self.max_tokens
        for sentence in ranked:
            if len(chosen) == self.max_sentences or (chosen and sentence.overlap == 0):
                break
            cost = count_tokens(sentence.text) + 3
            if cost > budget:
                continue
            chosen.append(sentence)
            budget -= cost
        chosen.sort(key=lambda s: (s.n, s.position))
        return [f"{s.text} [{s.n}]" for s in chosen]

    async def plan(
        self, question: str, sources: Sequence[Source], history: Sequence[TurnLike] = ()
    ) -> AnswerPlan:
        return AnswerPlan([s.n for s in sources], self._stream(question, sources))

    async def _stream(self, question: str, sources: Sequence[Source]) -> AsyncIterator[str | Usage]:
        pieces = self.compose(question, sources)
        for i, piece in enumerate(pieces):
            for j, word in enumerate(piece.split(" ")):
                yield ("" if i == 0 and j == 0 else " ") + word
        yield Usage(0, count_tokens(" ".join(pieces)), model=self.model)


def _error(exc: LLMError | PromptTooLarge) -> ErrorEvent:
    if isinstance(exc, PromptTooLarge):
        return ErrorEvent(str(exc), 413)
    retry_after = exc.retry_after if isinstance(exc, LLMUnavailable) else None
    return ErrorEvent(str(exc), exc.http_status, retry_after)


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
