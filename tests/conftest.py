"""Fixtures shared by every test: a live citeline server on loopback over a temporary data dir."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from service.serving import server_config
from tests.redis_server import RedisServer, free_port, run_redis

Overrides = dict[Any, Any]


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class LiveServer:
    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    crashed: list[BaseException]

    @property
    def runtime(self) -> Runtime:
        """The server's parts, to inspect (store contents, registry rows); never to replace."""
        runtime: Runtime = self.server.config.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        with self.client() as c:

            def finished() -> dict[str, Any] | None:
                job: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
                return job if job["status"] in ("completed", "failed") else None

            result: dict[str, Any] = wait_until(finished, timeout)
            return result

    def index(self, **doc: Any) -> dict[str, Any]:
        """POST one document and wait until its job completes."""
        with self.client() as c:
            r = c.post("/v1/documents", json=doc)
            assert r.status_code == 202, r.text
            job = self.wait_job(r.json()["job_id"])
            assert job["status"] == "completed", job
            return dict(r.json())

    def run_on_loop(self, coro: Any) -> Any:
        """Run a coroutine on the server's own event loop (for store/registry checks)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def start_server(settings: Settings, overrides: Overrides | None = None) -> LiveServer:
    app = create_app(settings, dependency_overrides=overrides)
    port = free_port()
    # The production server's configuration (its header and body bounds), on a free port.
    config = server_config(
        app, settings, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []
    crashed: list[BaseException] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    def run() -> None:
        # A crash is kept and raised by `stop_server`, in the test that started this server
        # (an exception escaping the thread would be blamed on whichever test runs next).
        try:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(serve())
        except BaseException as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run, name="citeline-test-server", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=60)
    assert server.started, "server failed to start"
    return LiveServer(f"http://127.0.0.1:{port}", settings, server, thread, loops[0], crashed)


def stop_server(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(timeout=30)
    assert not live.thread.is_alive(), f"server did not stop:\n{hung_server_report(live)}"
    if live.crashed:
        raise AssertionError("the test server crashed") from live.crashed[0]


def hung_server_report(live: LiveServer) -> str:
    """Where a server that will not stop is stuck: its thread's stack, its open connections
    and every task still on its loop, each with its stack."""
    frame = sys._current_frames().get(live.thread.ident or 0)
    lines = ["server thread:", *traceback.format_stack(frame)] if frame else []
    lines.append(f"open connections: {len(live.server.server_state.connections)}")
    for task in asyncio.all_tasks(live.loop):
        lines.append(f"task {task.get_name()}:")
        lines += [f"  {frame}\n" for frame in awaiting(task.get_coro())]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


_FRAMES = ("cr_frame", "gi_frame", "ag_frame")
_AWAITS = ("cr_await", "gi_yieldfrom", "ag_await")


def awaiting(coro: Any) -> Iterator[str]:
    """The chain of coroutines (and generators) a suspended coroutine waits on, outermost first."""
    while coro is not None:
        if type(coro).__name__ == "async_generator_asend":  # the generator it drives
            coro = next((g for g in gc.get_referents(coro) if inspect.isasyncgen(g)), coro)
        frame = next((getattr(coro, a) for a in _FRAMES if getattr(coro, a, None)), None)
        if frame is None:
            yield repr(coro)
            return
        yield f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        coro = next((getattr(coro, a) for a in _AWAITS if getattr(coro, a, None)), None)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    started: list[LiveServer] = []

    def make(dependency_overrides: Overrides | None = None, **overrides: Any) -> LiveServer:
        overrides.setdefault("data_dir", tmp_path / f"data{len(started)}")
        live = start_server(Settings(**overrides), dependency_overrides)
        started.append(live)
        return live

    yield make
    for live in started:
        if live.thread.is_alive() or live.crashed:
            stop_server(live)


@pytest.fixture
def server(make_server: Any) -> LiveServer:
    live: LiveServer = make_server()
    return live


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis of this test's own (see `tests.redis_server`), or a skip saying why."""
    yield from run_redis(tmp_path)
