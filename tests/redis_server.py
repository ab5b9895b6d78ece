"""A real Redis for tests (the `redis_server` fixture): CITELINE_TEST_REDIS_URL if set (its
database is flushed), else a `redis-server` started on a free port, else a testcontainers Redis
when a Docker engine answers, else the test is skipped with the reason."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis


@dataclass
class RedisServer:
    url: str
    proc: subprocess.Popen[bytes] | None = None  # ours: it can be stalled

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def stall(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung Redis)."""
        if self.proc is None:
            pytest.skip("CITELINE_TEST_REDIS_URL points to a Redis this test cannot stop")
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)


def _answers(url: str) -> bool:
    with contextlib.suppress(redis.RedisError, OSError):
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    return False


def _docker_redis() -> Iterator[RedisServer] | None:
    try:
        import docker  # type: ignore[import-untyped]
        from testcontainers.community.redis import RedisContainer  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        docker.from_env().ping()
    except Exception:  # any failure means "no engine answers"
        return None

    def run() -> Iterator[RedisServer]:
        with RedisContainer("redis:7-alpine") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield RedisServer(f"redis://{host}:{port}/0")

    return run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def run_redis(tmp_path: Path) -> Iterator[RedisServer]:
    url = os.environ.get("CITELINE_TEST_REDIS_URL")
    if url:
        if not _answers(url):
            pytest.skip(f"CITELINE_TEST_REDIS_URL={url} does not answer")
        redis.Redis.from_url(url).flushdb()
        yield RedisServer(url)
        redis.Redis.from_url(url).flushdb()
        return
    binary = shutil.which("redis-server")
    if binary is None:
        containers = _docker_redis()
        if containers is None:
            pytest.skip(
                "no Redis: set CITELINE_TEST_REDIS_URL, install redis-server "
                "(apt-get install redis-server), or run a Docker engine for testcontainers"
            )
        yield from containers
        return
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", proc)
    try:
        _wait_until(lambda: proc.poll() is not None or _answers(server.url), timeout=10)
        assert proc.poll() is None, "redis-server exited at start"
        yield server
    finally:
        server.resume()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
