"""SSE keep-alive pings during silence, and an error event instead of a dropped connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from schemas.query import Source
from service.query.answering import AnswerPlan
from tests.integration.corpus import post_all
from tests.integration.faults import with_answerer


class SlowAnswerer:
    """Stays silent before answering, long enough for keep-alive pings to be due."""

    model = "slow"

    def __init__(self, silence_s: float) -> None:
        self.silence_s = silence_s

    async def plan(self, question: str, sources: Sequence[Source], history: Any) -> AnswerPlan:
        return AnswerPlan([s.n for s in sources], self._stream())

    async def _stream(self) -> AsyncIterator[str]:
        await asyncio.sleep(self.silence_s)
        yield "Late words [1]."


class BrokenAnswerer:
    model = "broken"

    async def plan(self, question: str, sources: Sequence[Source], history: Any) -> AnswerPlan:
        return AnswerPlan([s.n for s in sources], self._stream())

    async def _stream(self) -> AsyncIterator[str]:
        yield "First words"
        raise ConnectionError("upstream went away")


def raw_lines(live: Any, body: dict[str, Any]) -> list[str]:
    with (
        httpx.Client(base_url=live.url, timeout=30) as c,
        c.stream("POST", "/v1/query", json={**body, "stream": True}) as r,
    ):
        assert r.status_code == 200
        return list(r.iter_lines())


def test_silence_is_filled_with_ping_comments(make_server: Any) -> None:
    live = make_server(
        sse_ping_interval_s=0.05, dependency_overrides=with_answerer(SlowAnswerer(silence_s=0.5))
    )
    post_all(live)
    lines = raw_lines(live, {"question": "Which volcano is in Sicily?"})
    first_delta = lines.index("event: delta")
    assert ": ping" in lines[:first_delta]
    assert [line for line in lines if line][-1] == "data: [DONE]"


def test_failure_mid_stream_is_an_error_event_then_done(make_server: Any) -> None:
    server = make_server(dependency_overrides=with_answerer(BrokenAnswerer()))
    post_all(server)
    lines = [line for line in raw_lines(server, {"question": "Which volcano?"}) if line]
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events == ["sources", "delta", "error"]
    error = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
    assert "ConnectionError" in error["message"]
    assert lines[-1] == "data: [DONE]"
