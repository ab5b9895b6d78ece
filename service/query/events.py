"""The events of one answer run; every wire format is an encoder over them."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.query import Source, UsageOut
from service.query.citations import Citation


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
