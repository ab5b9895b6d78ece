"""Resumable streams: each answer run is produced detached from its request into a run buffer.

The response is a reader of that buffer, so a client that drops can come back: SSE ids are
`<run>-<seq>`, `Last-Event-ID` replays the frames after `seq` exactly once, and a chat's active
run can be picked up again (`GET /api/chat/{id}/stream`). The buffer lives in memory, or in Redis
when `CITELINE_RESUME_REDIS_URL` (default: `CITELINE_REDIS_URL`) is set, so that any API process
can replay it. A run is kept while it runs and for `CITELINE_RESUME_TTL_S` after. Size is bounded
per run (`CITELINE_RESUME_MAX_RUN_BYTES`) and, in memory, in runs (`CITELINE_RESUME_MAX_RUNS`).

A run belongs to its owner (the tenant and API key that started it): a chat id is looked up
among the owner's runs only, so another caller can neither replay nor take over the chat, and
a run id from someone else is unknown. A run nobody reads for `CITELINE_RUN_ABANDON_S` (the
client left and did not come back) is stopped, which closes its LLM request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from service.config import Settings
from service.errors import BadRequest, Unavailable

log = logging.getLogger("citeline.resume")

RUNNING_TTL_S = 600.0  # a run still marked running after this long without a frame is dropped
_EVENT_ID = re.compile(r"^([0-9a-f]{16})-(\d{1,9})$")


class RunGone(Exception):
    """The run is unknown, or expired from the buffer."""


class RunStoreError(Exception):
    """The buffer's backing store failed while reading."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    chat_id: str | None
    active: bool
    owner: str


def event_id(run_id: str, seq: int) -> str:
    return f"{run_id}-{seq}"


def parse_event_id(value: str) -> tuple[str, int]:
    m = _EVENT_ID.match(value.strip())
    if m is None:
        raise BadRequest("Last-Event-ID must be an id this service sent: <run>-<seq>")
    return m.group(1), int(m.group(2))


class RunBuffer(Protocol):
    async def open(self, run_id: str, chat_id: str | None, owner: str) -> None: ...
    async def append(self, run_id: str, seq: int, frame: str) -> None: ...
    async def finish(self, run_id: str, seq: int) -> None: ...
    async def info(self, run_id: str) -> RunInfo | None: ...
    async def latest(self, owner: str, chat_id: str) -> RunInfo | None: ...
    def read(self, run_id: str, after: int) -> AsyncIterator[tuple[int, str]]: ...
    async def idle_s(self, run_id: str) -> float:
        """Seconds since a reader last followed the run (0 while one does)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _MemoryRun:
    chat_id: str | None
    owner: str
    frames: list[str] = field(default_factory=list)
    done: bool = False
    expires: float = math.inf
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    readers: int = 0
    last_read: float = field(default_factory=time.monotonic)


class MemoryRunBuffer:
    """Runs in this process's memory: at most `max_runs`, each kept `ttl_s` after it ends."""

    def __init__(self, ttl_s: float, max_runs: int) -> None:
        self.ttl_s = ttl_s
        self.max_runs = max_runs
        self._runs: dict[str, _MemoryRun] = {}  # insertion order is age
        self._chats: dict[tuple[str, str], str] = {}  # (owner, chat id) -> latest run

    def _drop(self, run_id: str) -> None:
        run = self._runs.pop(run_id)
        key = (run.owner, run.chat_id or "")
        if run.chat_id is not None and self._chats.get(key) == run_id:
            del self._chats[key]

    def _sweep(self) -> None:
        now = time.monotonic()
        for run_id in [r for r, run in self._runs.items() if run.expires <= now]:
            self._drop(run_id)

    async def open(self, run_id: str, chat_id: str | None, owner: str) -> None:
        self._sweep()
        if len(self._runs) >= self.max_runs:
            oldest_done = next((r for r, run in self._runs.items() if run.done), None)
            if oldest_done is None:
                raise Unavailable(
                    f"{self.max_runs} answers are streaming (CITELINE_RESUME_MAX_RUNS)",
                    retry_after=1,
                )
            self._drop(oldest_done)
        self._runs[run_id] = _MemoryRun(chat_id, owner)
        if chat_id is not None:
            self._chats[(owner, chat_id)] = run_id

    async def append(self, run_id: str, seq: int, frame: str) -> None:
        run = self._runs[run_id]
        async with run.changed:
            run.frames.append(frame)
            run.changed.notify_all()

    async def finish(self, run_id: str, seq: int) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        async with run.changed:
            run.done = True
            run.expires = time.monotonic() + self.ttl_s
            run.changed.notify_all()

    async def info(self, run_id: str) -> RunInfo | None:
        self._sweep()
        run = self._runs.get(run_id)
        return None if run is None else RunInfo(run_id, run.chat_id, not run.done, run.owner)

    async def latest(self, owner: str, chat_id: str) -> RunInfo | None:
        self._sweep()
        run_id = self._chats.get((owner, chat_id))
        return None if run_id is None else await self.info(run_id)

    async def idle_s(self, run_id: str) -> float:
        run = self._runs.get(run_id)
        if run is None or run.readers:
            return 0.0
        return time.monotonic() - run.last_read

    async def read(self, run_id: str, after: int) -> AsyncIterator[tuple[int, str]]:
        run = self._runs.get(run_id)
        if run is None:
            raise RunGone(run_id)
        pos = max(after, 0)
        run.readers += 1
        try:
            while True:
                async with run.changed:
                    while len(run.frames) <= pos and not run.done:
                        await run.changed.wait()
                    batch, done = run.frames[pos:], run.done
                for seq, frame in enumerate(batch, start=pos + 1):
                    yield seq, frame
                pos += len(batch)
                if done and pos >= len(run.frames):
                    return
        finally:
            run.readers -= 1
            run.last_read = time.monotonic()

    async def close(self) -> None:
        self._runs.clear()
        self._chats.clear()


class RedisRunBuffer:
    """Runs in Redis: a stream of frames per run (entry ids `0-<seq>`), a state hash, a chat key."""

    POLL_MS = 1000

    def __init__(self, url: str, ttl_s: float, prefix: str = "citeline:runs:") -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.ttl = max(1, math.ceil(ttl_s))
        self.running_ttl = max(self.ttl, int(RUNNING_TTL_S))
        self.prefix = prefix

    def _frames(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}:frames"

    def _state(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}:state"

    def _chat(self, owner: str, chat_id: str) -> str:
        who = hashlib.sha256(owner.encode()).hexdigest()[:16]  # the owner's chats only
        return f"{self.prefix}chat:{who}:{chat_id}"

    async def open(self, run_id: str, chat_id: str | None, owner: str) -> None:
        state = {"chat": chat_id or "", "done": "0", "owner": owner, "read_at": repr(time.time())}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._state(run_id), mapping=state)
            pipe.expire(self._state(run_id), self.running_ttl)
            if chat_id is not None:
                pipe.set(self._chat(owner, chat_id), run_id, ex=self.running_ttl)
            await pipe.execute()

    async def append(self, run_id: str, seq: int, frame: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._frames(run_id), {"f": frame}, id=f"0-{seq}")
            pipe.expire(self._frames(run_id), self.running_ttl)
            pipe.expire(self._state(run_id), self.running_ttl)
            await pipe.execute()

    async def finish(self, run_id: str, seq: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._frames(run_id), {"done": "1"}, id=f"0-{seq}")
            pipe.hset(self._state(run_id), "done", "1")
            pipe.expire(self._frames(run_id), self.ttl)
            pipe.expire(self._state(run_id), self.ttl)
            await pipe.execute()

    async def info(self, run_id: str) -> RunInfo | None:
        state = await self.redis.hgetall(self._state(run_id))
        if not state:
            return None
        chat = state.get(b"chat", b"").decode()
        owner = state.get(b"owner", b"").decode()
        return RunInfo(run_id, chat or None, state.get(b"done") != b"1", owner)

    async def latest(self, owner: str, chat_id: str) -> RunInfo | None:
        run_id = await self.redis.get(self._chat(owner, chat_id))
        return None if run_id is None else await self.info(run_id.decode())

    async def idle_s(self, run_id: str) -> float:
        read_at = await self.redis.hget(self._state(run_id), "read_at")
        return 0.0 if read_at is None else max(time.time() - float(read_at), 0.0)

    async def read(self, run_id: str, after: int) -> AsyncIterator[tuple[int, str]]:
        from redis.exceptions import RedisError

        try:
            if not await self.redis.exists(self._state(run_id)):
                raise RunGone(run_id)
            last: bytes | str = f"0-{max(after, 0)}"
            while True:
                # A reader is following: the producer is not abandoned (see Runs).
                await self.redis.hset(self._state(run_id), "read_at", repr(time.time()))
                got = await self.redis.xread({self._frames(run_id): last}, block=self.POLL_MS)
                if not got:
                    if not await self.redis.exists(self._state(run_id)):
                        raise RunGone(run_id)
                    continue
                for entry_id, data in got[0][1]:
                    if b"done" in data:
                        return
                    last = entry_id
                    yield int(entry_id.split(b"-")[1]), data[b"f"].decode()
        except RedisError as exc:
            raise RunStoreError(f"the run buffer failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self.redis.aclose()


class Runs:
    """Starts answer runs as tasks writing into the buffer; readers replay them."""

    def __init__(self, buffer: RunBuffer, max_run_bytes: int, abandon_s: float) -> None:
        self.buffer = buffer
        self.max_run_bytes = max_run_bytes
        self.abandon_s = abandon_s
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        owner: str,
        chat_id: str | None,
        frames: AsyncGenerator[str, None],
        overflow: Callable[[str], list[str]],
    ) -> str:
        run_id = secrets.token_hex(8)
        await self.buffer.open(run_id, chat_id, owner)
        task = asyncio.create_task(self._produce(run_id, frames, overflow), name=f"run.{run_id}")
        watchdog = asyncio.create_task(self._watch(run_id, task), name=f"run.{run_id}.watch")
        for t in (task, watchdog):
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: watchdog.cancel())
        return run_id

    async def _watch(self, run_id: str, producer: asyncio.Task[None]) -> None:
        """Stop the run once nobody has read it for `abandon_s`: its client left for good."""
        while not producer.done():
            await asyncio.sleep(self.abandon_s / 4)
            try:
                idle = await self.buffer.idle_s(run_id)
            except Exception:  # a buffer that cannot answer: keep the run, look again later
                log.warning("run.watch_failed", extra={"run_id": run_id})
                continue
            if idle > self.abandon_s:
                log.info("run.abandoned", extra={"run_id": run_id, "idle_s": round(idle, 1)})
                producer.cancel()
                return

    async def _produce(
        self, run_id: str, frames: AsyncGenerator[str, None], overflow: Callable[[str], list[str]]
    ) -> None:
        seq = size = 0
        try:
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    size += len(frame)
                    if size > self.max_run_bytes:
                        note = f"the answer exceeded {self.max_run_bytes} bytes"
                        for extra in overflow(note + " (CITELINE_RESUME_MAX_RUN_BYTES)"):
                            seq += 1
                            await self.buffer.append(run_id, seq, extra)
                        break
                    seq += 1
                    await self.buffer.append(run_id, seq, frame)
        except Exception:  # this task's top level: nobody awaits it, so log what ended it
            log.exception("run.failed", extra={"run_id": run_id})
        except asyncio.CancelledError:  # abandoned, or shutdown: end the run for its readers
            for extra in overflow("the answer was stopped: nobody was reading it"):
                seq += 1
                with contextlib.suppress(Exception):
                    await self.buffer.append(run_id, seq, extra)
            raise
        finally:
            with contextlib.suppress(Exception):
                await self.buffer.finish(run_id, seq + 1)

    @property
    def active(self) -> int:
        """Runs still being produced by this process."""
        return len(self._tasks)

    def read(self, run_id: str, after: int = 0) -> AsyncIterator[tuple[int, str]]:
        return self.buffer.read(run_id, after)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.buffer.close()


def build_runs(settings: Settings) -> Runs:
    buffer: RunBuffer
    redis_url = settings.resume_redis_url or settings.redis_url
    if redis_url:
        buffer = RedisRunBuffer(redis_url, settings.resume_ttl_s)
    else:
        buffer = MemoryRunBuffer(settings.resume_ttl_s, settings.resume_max_runs)
    return Runs(buffer, settings.resume_max_run_bytes, settings.run_abandon_s)
