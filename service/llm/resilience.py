"""A deadline for the whole call, a rate limit, and a fallback chain, around any LLMs.

Rules (`ResilientLLM.stream`):
- the deadline covers everything: waiting for the rate limiter, connecting, retries, the time
  to the first delta and the whole stream;
- before the first delta, LLMUnavailable (and LLMRejected for an unknown model) moves on to
  the next model of the chain; any other rejection is raised at once;
- after the first delta nothing is retried: every failure, the deadline included, raises
  LLMStreamBroken, because part of the answer is already with the client;
- a Retry-After from the primary pauses the shared limiter for every request.

Each model call (one attempt of one model) can be watched by an `LLMObserver` (metrics and
spans): it sees the call's events, its failure and its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Protocol

from service.llm.base import (
    LLM,
    ChatMessage,
    LLMDeadlineExceeded,
    LLMError,
    LLMEvent,
    LLMRejected,
    LLMStreamBroken,
    LLMUnavailable,
    TextDelta,
    Usage,
    estimate_prompt_tokens,
)
from service.llm.ratelimit import RateLimiter, Reservation

__all__ = ["CallWatch", "LLMObserver", "ResilientLLM"]

log = logging.getLogger("citeline.llm")


class CallWatch(Protocol):
    """One model call, watched: every event it yields, the error that ended it, its end."""

    def event(self, event: LLMEvent) -> None: ...

    def failed(self, exc: LLMError) -> None: ...

    def end(self) -> None: ...


def _failure(exc: LLMError, sent: bool, model: str) -> LLMError:
    """What a call's failure is to its caller: after the first delta, always LLMStreamBroken."""
    if not sent or isinstance(exc, LLMStreamBroken):
        return exc
    return LLMStreamBroken(
        f"the answer from {model!r} broke off: {exc}", model=model, detail=exc.detail
    )


class LLMObserver(Protocol):
    def call(self, llm: LLM, messages: Sequence[ChatMessage], max_tokens: int) -> CallWatch: ...


async def _next_before(events: AsyncIterator[LLMEvent], deadline: float, model: str) -> LLMEvent:
    """The next event, or LLMDeadlineExceeded once the loop clock passes `deadline`.

    The timeout wraps a single `__anext__`, never a `yield`: a timeout spanning a yield would
    cancel whatever the consumer awaits at that moment instead of the upstream read.
    """
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            return await anext(events)
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise LLMDeadlineExceeded(f"{model!r} did not answer in time", model=model) from exc


class ResilientLLM:
    """LLM that adds a per-request deadline, the limiter and fallback models to `primary`.

    The limiter describes the primary's quota; a fallback is another deployment with its own
    quota, used exactly when the primary is saturated, so it is not limited here. The context
    window is the smallest of the chain's, so one prompt fits whichever model answers.
    """

    def __init__(
        self,
        primary: LLM,
        fallbacks: Sequence[LLM] = (),
        limiter: RateLimiter | None = None,
        deadline_s: float = 60.0,
        observer: LLMObserver | None = None,
    ) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self._chain: tuple[LLM, ...] = (primary, *fallbacks)
        self._observer = observer
        self._limiter = limiter
        self.deadline_s = deadline_s
        self.model = primary.model
        self.context_window = min(llm.context_window for llm in self._chain)

    async def aclose(self) -> None:
        for llm in self._chain:
            await llm.aclose()

    async def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> AsyncIterator[LLMEvent]:
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        failures: list[LLMError] = []
        for position, llm in enumerate(self._chain):
            limiter = self._limiter if position == 0 else None
            try:
                reservation = await self._reserve(limiter, messages, max_tokens, deadline)
            except LLMUnavailable as exc:
                exc.model = llm.model
                failures.append(exc)
                continue
            watch = self._observer.call(llm, messages, max_tokens) if self._observer else None
            attempt = self._attempt(
                llm, messages, max_tokens, deadline, limiter, reservation, watch
            )
            try:
                async with aclosing(attempt):
                    async for event in attempt:
                        yield event
                return
            except LLMError as exc:  # raised before the first delta, or LLMStreamBroken
                if not self._may_fall_back(exc):
                    raise
                failures.append(exc)
                self._log_fallback(position, exc)
        raise self._exhausted(failures)

    @staticmethod
    async def _reserve(
        limiter: RateLimiter | None,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        deadline: float,
    ) -> Reservation | None:
        """The limiter's grant for this call (None without a limiter), within the deadline."""
        if limiter is None:
            return None
        wait = max(deadline - asyncio.get_running_loop().time(), 0.0)
        return await limiter.acquire(estimate_prompt_tokens(messages) + max_tokens, max_wait=wait)

    @staticmethod
    async def _attempt(
        llm: LLM,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        deadline: float,
        limiter: RateLimiter | None,
        reservation: Reservation | None,
        watch: CallWatch | None = None,
    ) -> AsyncGenerator[LLMEvent]:
        """One model's stream. A failure after the first delta is LLMStreamBroken; one before
        it is raised as it is, with the reservation returned and a Retry-After applied."""
        events = llm.stream(messages, max_tokens=max_tokens)
        sent = False
        try:
            while True:
                try:
                    event = await _next_before(events, deadline, llm.model)
                except StopAsyncIteration:
                    return
                sent = sent or isinstance(event, TextDelta)
                if isinstance(event, Usage) and limiter and reservation:
                    limiter.settle(reservation, event.total_tokens)
                if watch is not None:
                    watch.event(event)
                yield event
        except LLMError as exc:
            failure = _failure(exc, sent, llm.model)
            if watch is not None:
                watch.failed(failure)
            if not sent and limiter and reservation:
                limiter.settle(reservation, 0)  # nothing was generated
                if isinstance(exc, LLMUnavailable) and exc.retry_after:
                    limiter.pause(exc.retry_after)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            if watch is not None:
                watch.end()
            # Closes the upstream response when we stop early (our own consumer closed us, or
            # was cancelled); a no-op when the stream already finished.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _log_fallback(self, position: int, exc: LLMError) -> None:
        if position + 1 < len(self._chain):
            log.warning(
                "llm.fallback",
                extra={
                    "failed_model": self._chain[position].model,
                    "error": str(exc),
                    "detail": exc.detail,
                    "next_model": self._chain[position + 1].model,
                },
            )

    @staticmethod
    def _may_fall_back(exc: LLMError) -> bool:
        if isinstance(exc, LLMUnavailable):
            return True
        return isinstance(exc, LLMRejected) and exc.model_not_found

    def _exhausted(self, failures: list[LLMError]) -> LLMError:
        unavailable = [f for f in failures if isinstance(f, LLMUnavailable)]
        if not unavailable:
            return failures[-1]
        waits = [f.retry_after for f in unavailable if f.retry_after is not None]
        summary = "; ".join(str(f) for f in failures)
        return LLMUnavailable(
            f"no LLM could answer: {summary}",
            model=failures[-1].model,
            status_code=unavailable[-1].status_code,
            retry_after=min(waits) if waits else None,
            detail="; ".join(f.detail for f in failures if f.detail),
        )
