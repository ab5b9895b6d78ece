"""Resumable chat streams: drop, reconnect with Last-Event-ID, get the rest exactly once.

Runs against the in-memory buffer and against a real `redis-server` started on a free port
(skipped, with the reason, when the binary is missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.errors import Unavailable
from service.streams.resume import MemoryRunBuffer
from tests.conftest import wait_until
from tests.integration.corpus import post_all
from tests.integration.faults import Gate, transformed
from tests.redis_server import RedisServer

QUESTION = "Which volcano in Sicily is most active?"


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"resume_redis_url": request.getfixturevalue("redis_url")}


def sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(id, data) per event; comments (pings) are skipped."""
    event_id: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event_id, "\n".join(data)
            event_id, data = None, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "data":
                data.append(value)


def user(text: str) -> dict[str, Any]:
    return {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}


def start_and_drop(live: Any, chat_id: str, deltas: int) -> list[tuple[str | None, str]]:
    """POST a chat, read until `deltas` text deltas arrived, then drop the connection."""
    body = {"id": chat_id, "messages": [user(QUESTION)]}
    got: list[tuple[str | None, str]] = []
    with (
        httpx.Client(base_url=live.url, timeout=30) as c,
        c.stream("POST", "/api/chat", json=body) as r,
    ):
        assert r.status_code == 200
        for event in sse(r.iter_lines()):
            got.append(event)
            if sum('"text-delta"' in d for _, d in got) == deltas:
                break
    return got


def resume(live: Any, chat_id: str, last_id: str | None) -> httpx.Response:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with httpx.Client(base_url=live.url, timeout=30) as c:
        return c.get(f"/api/chat/{chat_id}/stream", headers=headers)


def read_rest(live: Any, chat_id: str, last_id: str | None, on_open: Any = None) -> list[Any]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with (
        httpx.Client(base_url=live.url, timeout=30) as c,
        c.stream("GET", f"/api/chat/{chat_id}/stream", headers=headers) as r,
    ):
        assert r.status_code == 200 and r.headers["x-vercel-ai-ui-message-stream"] == "v1"
        if on_open is not None:
            on_open()
        return list(sse(r.iter_lines()))


def seqs(events: list[tuple[str | None, str]]) -> list[int]:
    return [int(i.rsplit("-", 1)[1]) for i, _ in events if i is not None]


def text(events: list[tuple[str | None, str]]) -> str:
    chunks = [json.loads(d) for _, d in events if d != "[DONE]"]
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


def full_text(live: Any) -> str:
    """The answer read in one go, for comparison."""
    with live.client() as c:
        r = c.post("/api/chat", json={"messages": [user(QUESTION)]})
    answer = text(list(sse(iter(r.text.splitlines()))))
    assert "Etna" in answer and len(answer.split()) > 8
    return answer


def test_reconnect_with_last_event_id_gets_the_rest_exactly_once(
    make_server: Any, backend: dict[str, Any]
) -> None:
    gate = Gate(before=6)
    live = make_server(dependency_overrides=transformed(gate), **backend)
    post_all(live)
    expected = full_text(live)
    gate.arm()
    first = start_and_drop(live, "chat-r", deltas=3)  # the run holds at word 6, still active
    last_id = first[-1][0]
    assert last_id is not None
    rest = read_rest(live, "chat-r", last_id, on_open=lambda: gate.open(live))
    assert rest[-1] == (None, "[DONE]")
    numbers = seqs(first) + seqs(rest)
    assert numbers == list(range(1, len(numbers) + 1))  # no gap, no duplicate
    assert text(first) + text(rest) == expected
    run = last_id.rsplit("-", 1)[0]
    full = read_rest(live, "chat-r", f"{run}-0")  # finished, still buffered: the whole run
    assert full[:-1] == first + rest[:-1]
    assert resume(live, "chat-r", None).status_code == 204  # nothing active any more


def test_resume_replays_an_active_run_from_the_start(
    make_server: Any, backend: dict[str, Any]
) -> None:
    """What useChat({resume: true}) does after a page reload."""
    gate = Gate(before=4)
    live = make_server(dependency_overrides=transformed(gate), **backend)
    post_all(live)
    expected = full_text(live)
    gate.arm()
    first = start_and_drop(live, "chat-a", deltas=2)
    again = read_rest(live, "chat-a", None, on_open=lambda: gate.open(live))
    assert again[: len(first)] == first
    assert seqs(again) == list(range(1, len(again)))
    assert text(again) == expected and again[-1] == (None, "[DONE]")


def test_another_process_replays_the_run_through_redis(make_server: Any, redis_url: str) -> None:
    gate = Gate(before=5)
    a = make_server(resume_redis_url=redis_url, dependency_overrides=transformed(gate))
    b = make_server(resume_redis_url=redis_url)  # no documents: it only reads the buffer
    post_all(a)
    expected = full_text(a)
    gate.arm()
    first = start_and_drop(a, "chat-x", deltas=2)
    rest = read_rest(b, "chat-x", first[-1][0], on_open=lambda: gate.open(a))
    numbers = seqs(first) + seqs(rest)
    assert numbers == list(range(1, len(numbers) + 1))
    assert text(first) + text(rest) == expected


def test_no_active_stream_is_204_and_a_foreign_run_404(server: Any) -> None:
    post_all(server)
    assert resume(server, "never-seen", None).status_code == 204
    with server.client() as c:
        r = c.post("/api/chat", json={"id": "chat-d", "messages": [user("What is a glacier?")]})
        ids = [i for i, _ in sse(iter(r.text.splitlines())) if i]
    assert resume(server, "chat-d", None).status_code == 204
    other = resume(server, "other-chat", ids[2])  # not that chat's run: unknown to this chat
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    assert resume(server, "chat-d", ids[-2]).status_code == 200


@pytest.mark.parametrize("bad", ["garbage", "0123456789abcdef", "xyz-1"])
def test_malformed_last_event_id_is_a_problem(server: Any, bad: str) -> None:
    r = resume(server, "chat-m", bad)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert "Last-Event-ID" in r.json()["detail"]


def test_finished_runs_expire_after_the_ttl(make_server: Any, backend: dict[str, Any]) -> None:
    live = make_server(resume_ttl_s=1, **backend)
    post_all(live)
    with live.client() as c:
        r = c.post("/api/chat", json={"id": "chat-t", "messages": [user("What is a glacier?")]})
    last = [i for i, _ in sse(iter(r.text.splitlines())) if i][-1]
    wait_until(lambda: resume(live, "chat-t", last).status_code == 404, timeout=15, interval=0.1)


def test_a_run_over_the_size_bound_ends_with_an_error(make_server: Any) -> None:
    live = make_server(resume_max_run_bytes=1024)
    post_all(live)
    with live.client() as c:
        r = c.post("/api/chat", json={"messages": [user("Which volcano in Sicily is active?")]})
    chunks = [json.loads(d) for _, d in sse(iter(r.text.splitlines())) if d != "[DONE]"]
    assert chunks[-1]["type"] == "error"
    assert "CITELINE_RESUME_MAX_RUN_BYTES" in chunks[-1]["errorText"]
    assert sum(len(json.dumps(ch, separators=(",", ":"))) for ch in chunks[:-1]) <= 1024


async def test_memory_buffer_bounds_the_number_of_runs() -> None:
    buffer = MemoryRunBuffer(ttl_s=60, max_runs=2)
    await buffer.open("a" * 16, "chat-1", "me")
    await buffer.open("b" * 16, "chat-2", "me")
    with pytest.raises(Unavailable):
        await buffer.open("c" * 16, "chat-3", "me")  # both still running
    await buffer.finish("a" * 16, 1)
    await buffer.open("c" * 16, "chat-3", "me")  # the oldest finished run makes room
    assert await buffer.info("a" * 16) is None and await buffer.latest("me", "chat-1") is None
    assert (await buffer.latest("me", "chat-3")) is not None
    assert (await buffer.latest("someone else", "chat-3")) is None  # chats are per owner
