"""Admission kinds, and the drain's bookkeeping."""

from __future__ import annotations

import asyncio

import pytest

from service.ops.gate import Drain, _Request, request_kind


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/v1/query", "answer"),
        ("POST", "/v1/stream", "answer"),
        ("POST", "/api/chat", "answer"),
        ("POST", "/v1/chat/completions", "answer"),
        ("GET", "/api/chat/chat-1/stream", "answer"),
        ("POST", "/mcp", "answer"),
        ("POST", "/v1/search", "search"),
        ("POST", "/v1/documents", "ingest"),
        ("POST", "/v1/documents/batch", "ingest"),
        ("POST", "/v1/index", "ingest"),
        ("GET", "/v1/documents", "other"),
        ("GET", "/metrics", "other"),
        ("GET", "/v1/query", "other"),
    ],
)
def test_request_kinds(method: str, path: str, kind: str) -> None:
    assert request_kind(method, path) == kind


async def test_drain_waits_for_requests_then_cuts_what_is_left() -> None:
    drain = Drain()
    finished = asyncio.Event()

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    async def slow() -> None:
        await asyncio.sleep(60)

    tasks = {name: asyncio.create_task(fn()) for name, fn in (("quick", quick), ("slow", slow))}
    entries = {name: _Request(task) for name, task in tasks.items()}  # type: ignore[arg-type]
    for name, entry in entries.items():
        drain.add(entry)
        tasks[name].add_done_callback(lambda _t, e=entry: drain.discard(e))
    await drain.close(grace_s=0.2, cut_wait_s=1.0)
    assert drain.closing and finished.is_set()
    assert not entries["quick"].cut and entries["slow"].cut and tasks["slow"].cancelled()
    assert drain.inflight == 0 and drain.remaining_s() == 0.0
