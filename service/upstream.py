"""Calls to upstream model APIs: which failures are transient, how long to wait, what they said.

The chat adapters (`service.llm`) turn an `UpstreamFailure` into their own error types; the
OpenAI-compatible embedder (`service.embeddings.dense`), which reads statuses itself, applies
the same rules with the same helpers. The rules, for every OpenAI-compatible server:

- transient: 408, 409, 429 (but an exhausted quota), 5xx, timeouts, refused or dropped
  connections, an error event without a status; try again after `retry_after` when known;
- permanent: every other 4xx, an exhausted quota, a response that breaks the contract;
  `not_found` marks a 404 (an unknown model or a wrong base URL).

`backoff_s` is the one retry schedule: the pipeline's in-process embedding retries and the arq
job retries both use it.

What an upstream said never reaches a client: a failure's `message` names only what failed
(the request, the HTTP status, the kind of fault), while everything the upstream sent back
(its body, which may quote a key or name internal hosts and paths) and the transport's own
words (host, port) go to `detail`, for the server log only.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import openai

__all__ = [
    "TRANSIENT_STATUSES",
    "UpstreamFailure",
    "backoff_s",
    "classify_openai_error",
    "is_transient_status",
    "parse_retry_after",
    "root_cause",
    "status_failure",
    "timed_out",
]

# The SDKs retry these statuses themselves, so they are transient by their own definition.
TRANSIENT_STATUSES = frozenset({408, 409, 429})


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES or status >= 500


class _Headers(Protocol):
    def get(self, key: str, /) -> str | None: ...


def parse_retry_after(headers: _Headers) -> float | None:
    """Seconds from retry-after-ms or Retry-After (seconds or an HTTP date), if present."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def timed_out(exc: BaseException) -> bool:
    """Whether an SDK timeout error really was a timeout.

    The SDK's aiohttp transport reports every failed or dropped connection as a connect
    timeout; the cause chain still holds aiohttp's own error, which tells the two apart.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return True
        if isinstance(cause, aiohttp.ClientConnectionError | ConnectionError):
            return False
        cause = cause.__cause__
    return True


def root_cause(exc: BaseException) -> str:
    """The innermost cause's message: the SDK's own says only "Connection error."."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc) or type(exc).__name__


def backoff_s(
    attempt: int, *, base: float, cap: float = 60.0, retry_after: float | None = None
) -> float:
    """Delay before retry `attempt` (1-based): base·2^(attempt-1), ±50 % jitter, capped, and
    never shorter than what the server asked for with Retry-After."""
    delay = min(base * 2 ** max(attempt - 1, 0), cap) * random.uniform(0.5, 1.5)
    return float(max(retry_after or 0.0, delay))


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    kind: Literal["transient", "permanent"]
    message: str  # safe to show: no upstream text
    status: int | None = None
    retry_after: float | None = None
    not_found: bool = False
    detail: str = ""  # what the upstream said: logs only

    @property
    def transient(self) -> bool:
        return self.kind == "transient"


def _server_message(exc: openai.APIStatusError) -> str:
    # The SDK's message is "Error code: N - {whole body}"; the body is the inner error object.
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


def status_failure(
    subject: str, status: int, code: str | None, headers: _Headers, detail: str
) -> UpstreamFailure:
    """An error status from an upstream, with the error `code` its body gave and what it said
    (`detail`), as a failure."""
    message = f"{subject} failed with HTTP {status}"
    # OpenAI reports an exhausted quota as a 429, but waiting does not refill it.
    if status == 429 and code == "insufficient_quota":
        return UpstreamFailure("permanent", f"{message} (quota exhausted)", status, detail=detail)
    if is_transient_status(status):
        retry_after = parse_retry_after(headers)
        return UpstreamFailure("transient", message, status, retry_after, detail=detail)
    return UpstreamFailure("permanent", message, status, not_found=status == 404, detail=detail)


def classify_openai_error(exc: openai.OpenAIError, subject: str, server: str) -> UpstreamFailure:
    """An `openai` SDK exception, raised after the SDK's own retries, as a failure.

    `subject` names the request in messages ("request to 'gpt-4o'"), `server` the upstream
    ("the LLM server").
    """
    if isinstance(exc, openai.APITimeoutError) and timed_out(exc):
        return UpstreamFailure("transient", f"{subject} timed out", detail=root_cause(exc))
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailure("transient", f"cannot reach {server}", detail=root_cause(exc))
    if isinstance(exc, openai.APIStatusError):
        return status_failure(
            subject, exc.status_code, exc.code, exc.response.headers, _server_message(exc)
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return UpstreamFailure("permanent", f"invalid response to {subject}", detail=str(exc))
    # APIError without a status: an `{"error": ...}` event inside a stream.
    return UpstreamFailure("transient", f"{subject} reported an error", detail=str(exc))
