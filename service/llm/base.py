"""The LLM contract: chat messages in, a stream of text deltas and one final Usage out.

Errors raised by `LLM.stream` (after the provider SDK's own retries are spent):

    LLMError                    base: no complete answer was produced
    ├── LLMUnavailable          429, 408/409, 5xx, connection refused or reset, timeouts, a
    │                           client-side rate limit that cannot grant in time, a stream
    │                           that ended before its first delta; try again later, after
    │                           `retry_after` seconds when known (the API answers 503)
    ├── LLMDeadlineExceeded     the whole request's deadline passed before the first delta
    │                           (the API answers 504)
    ├── LLMRejected             400/401/403/404/422 or an exhausted quota: the same request
    │                           fails the same way; `model_not_found` marks an unknown model,
    │                           the one rejection a fallback model may cure (the API answers 502)
    └── LLMStreamBroken         any failure after the first delta was yielded: the partial
                                answer is already out, so it is never retried (502 / an
                                error event at the end of the stream)

Transport errors that the SDKs let through unwrapped (an abrupt mid-stream cut raises plain
`httpx.RemoteProtocolError`, not an SDK exception) are mapped like connection failures.

An error's message says what failed, never what the provider answered: that (which may quote
an API key, a host or a path) is in `detail`, for the server log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from service.tokens import count_tokens

__all__ = [
    "LLM",
    "ChatMessage",
    "LLMDeadlineExceeded",
    "LLMError",
    "LLMEvent",
    "LLMRejected",
    "LLMStreamBroken",
    "LLMUnavailable",
    "Role",
    "TextDelta",
    "TurnLike",
    "Usage",
    "estimate_prompt_tokens",
]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


class TurnLike(Protocol):
    """An earlier conversation turn: a ChatMessage, or schemas.query.Turn as the API takes it."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call; `model` is the model that answered (a fallback may have)."""

    prompt_tokens: int
    completion_tokens: int
    model: str | None = None
    estimated: bool = False  # counted with tiktoken because the server reported nothing

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


LLMEvent = TextDelta | Usage


class LLM(Protocol):
    """A chat model. `stream` is an async generator: TextDelta events, then exactly one Usage.

    Closing the generator early (`aclose()`, or cancelling the consuming task) must close the
    upstream HTTP response promptly.
    """

    model: str
    context_window: int

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> AsyncIterator[LLMEvent]: ...

    async def aclose(self) -> None: ...


class LLMError(Exception):
    """Base of every LLM failure; `http_status` is what the API should answer with."""

    http_status = 502

    def __init__(self, message: str, *, model: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.model = model
        self.detail = detail


class LLMUnavailable(LLMError):
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message, model=model, detail=detail)
        self.status_code = status_code
        self.retry_after = retry_after


class LLMDeadlineExceeded(LLMError):
    http_status = 504


class LLMRejected(LLMError):
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = None,
        model_not_found: bool = False,
        detail: str = "",
    ) -> None:
        super().__init__(message, model=model, detail=detail)
        self.status_code = status_code
        self.model_not_found = model_not_found


class LLMStreamBroken(LLMError):
    http_status = 502


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """cl100k count with OpenAI's chat framing: 3 tokens per message plus 3 priming the reply."""
    return sum(3 + count_tokens(m.content) for m in messages) + 3
