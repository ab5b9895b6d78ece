"""An answer run as a sequence of events, and the extractive answerer used without an LLM.

Every wire format (JSON body, SSE, later the AI SDK and OpenAI streams) is an encoder over
the events `answer_events` yields: sources first, then text deltas, citations, usage, done.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from schemas.query import Source
from service.embeddings.sparse import Bm25Encoder
from service.indexing.tokens import count_tokens
from service.store.base import Hit

NOT_FOUND = "The indexed documents do not answer this question."
EXTRACTIVE_MODEL = "extractive"

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.MULTILINE)
_MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True, slots=True)
class SourcesEvent:
    sources: list[Source]


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    text: str


@dataclass(frozen=True, slots=True)
class CitationsEvent:
    cited: list[int]


@dataclass(frozen=True, slots=True)
class UsageEvent:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


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


AnswerEvent = SourcesEvent | DeltaEvent | CitationsEvent | UsageEvent | DoneEvent | ErrorEvent


def to_sources(hits: Sequence[Hit]) -> list[Source]:
    return [
        Source(
            n=n,
            document_id=h.document_id,
            chunk_id=h.chunk_id,
            title=h.title,
            source=h.source,
            text=h.text,
            start=h.start,
            end=h.end,
            score=h.score,
            metadata=h.metadata,
            cited=False,
        )
        for n, h in enumerate(hits, start=1)
    ]


def cited_numbers(answer: str, n_sources: int) -> list[int]:
    seen = {int(m) for m in _MARKER.findall(answer)}
    return sorted(n for n in seen if 1 <= n <= n_sources)


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

    async def stream(self, question: str, sources: Sequence[Source]) -> AsyncIterator[str]:
        for i, piece in enumerate(self.compose(question, sources)):
            words = piece.split(" ")
            for j, word in enumerate(words):
                yield ("" if i == 0 and j == 0 else " ") + word


async def answer_events(
    question: str,
    hits: Sequence[Hit],
    answerer: ExtractiveAnswerer,
    started: float,
) -> AsyncIterator[AnswerEvent]:
    """One answer run: sources, deltas, citations, usage, done; errors become an ErrorEvent."""
    sources = to_sources(hits)
    yield SourcesEvent(sources)
    parts: list[str] = []
    if not sources:
        parts.append(NOT_FOUND)
        yield DeltaEvent(NOT_FOUND)
    else:
        async for delta in answerer.stream(question, sources):
            parts.append(delta)
            yield DeltaEvent(delta)
    answer = "".join(parts)
    cited = cited_numbers(answer, len(sources))
    yield CitationsEvent(cited)
    usage = UsageEvent(prompt_tokens=0, completion_tokens=count_tokens(answer) if sources else 0)
    yield usage
    yield DoneEvent(
        answer, answerer.model, (time.perf_counter() - started) * 1000, usage.total_tokens
    )
