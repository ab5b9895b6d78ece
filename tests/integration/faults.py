"""Faults at the answer-run contract, injected through the app's dependency overrides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from service.deps import get_asker
from service.query.ask import Asker
from service.query.events import AnswerEvent, DeltaEvent

Transform = Callable[[str, AsyncIterator[AnswerEvent]], AsyncIterator[AnswerEvent]]


def asker_override(make: Callable[[Asker], Any]) -> dict[Any, Any]:
    """`dependency_overrides` that serve `make(the real asker)` to every route."""

    async def asker(request: Request) -> Any:
        return make(request.app.state.runtime.asker)

    return {get_asker: asker}


class TransformedAsker:
    """The real asker, its events passed through `transform(question, events)`."""

    def __init__(self, inner: Asker, transform: Transform) -> None:
        self.inner, self.transform = inner, transform

    async def ask(self, scope: Any, question: str, *args: Any, **kwargs: Any) -> Any:
        events = await self.inner.ask(scope, question, *args, **kwargs)
        return self.transform(question, events)


def transformed(transform: Transform) -> dict[Any, Any]:
    """Overrides under which every answer run goes through `transform`."""
    return asker_override(lambda inner: TransformedAsker(inner, transform))


def with_answerer(answerer: Any) -> dict[Any, Any]:
    """Overrides under which `answerer` writes every answer (retrieval stays real)."""
    return asker_override(
        lambda inner: Asker(inner.retriever, answerer, inner.pricing, default_max_results=5)
    )


async def broken(question: str, events: AsyncIterator[AnswerEvent]) -> AsyncIterator[AnswerEvent]:
    """The first text delta goes out, then the upstream fails."""
    async for event in events:
        yield event
        if isinstance(event, DeltaEvent):
            raise ConnectionError("upstream went away")


def slow_start(seconds: float) -> Transform:
    async def transform(question: str, events: AsyncIterator[AnswerEvent]) -> AsyncIterator[Any]:
        waited = False
        async for event in events:
            if isinstance(event, DeltaEvent) and not waited:
                waited = True
                await asyncio.sleep(seconds)
            yield event

    return transform


class Gate:
    """Once armed, holds the next answer before text delta number `before` until `open`."""

    def __init__(self, before: int) -> None:
        self.before = before
        self.armed = False
        self.event = asyncio.Event()

    def arm(self) -> None:
        self.armed = True

    async def __call__(
        self, question: str, events: AsyncIterator[AnswerEvent]
    ) -> AsyncIterator[AnswerEvent]:
        armed, self.armed = self.armed, False
        seen = 0
        async for event in events:
            if isinstance(event, DeltaEvent):
                if armed and seen == self.before:
                    await self.event.wait()
                seen += 1
            yield event

    def open(self, live: Any) -> None:
        live.loop.call_soon_threadsafe(self.event.set)
