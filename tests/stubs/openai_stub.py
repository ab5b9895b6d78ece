"""An OpenAI-compatible stub server on loopback, for tests and benchmarks.

In process (a uvicorn thread):

    with StubServer(dimension=8) as stub:
        client = AsyncOpenAI(base_url=stub.base_url, api_key="test")
        stub.faults.rate_limit(1, retry_after=0.05)

As a pytest fixture (the fixture takes the variable's name):

    openai_stub = stub_fixture()

Standalone: `python -m tests.stubs.openai_stub --port 9999`, steered over HTTP with RemoteStub.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import uvicorn

from tests.stubs.stub_app import StubApp
from tests.stubs.stub_exchange import StubAbort
from tests.stubs.stub_payloads import TOKEN_COUNTER
from tests.stubs.stub_state import (
    FaultSwitches,
    RecordedRequest,
    StubConfig,
    StubState,
)

__all__ = [
    "TOKEN_COUNTER",
    "RecordedRequest",
    "RemoteStub",
    "StubConfig",
    "StubServer",
    "closed_port_url",
    "spawn_stub",
    "stub_fixture",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_URL_LINE = "OPENAI_STUB_URL="
FixtureScope = Literal["session", "package", "module", "class", "function"]


class _QuietAborts(logging.Filter):
    """Drop uvicorn's traceback for deliberate connection cuts and shutdown cancellations."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StubAbort | asyncio.CancelledError)


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietAborts) for f in logger.filters):
        logger.addFilter(_QuietAborts())


def _listen(host: str, port: int) -> socket.socket:
    # Bound and listening before uvicorn starts: clients connecting early just queue.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _uvicorn_server(app: StubApp) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )
    return uvicorn.Server(config)


def closed_port_url() -> str:
    """A base URL on a loopback port nothing listens on, for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class StubServer:
    """The stub in a background thread. `url` is the root, `base_url` the OpenAI base ("/v1")."""

    def __init__(self, config: StubConfig | None = None, *, port: int = 0, **overrides: Any):
        self.state = StubState(config)
        if overrides:
            self.state.configure(**overrides)
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def faults(self) -> FaultSwitches:
        return self.state

    @property
    def config(self) -> StubConfig:
        return self.state.config

    def configure(self, **changes: Any) -> StubConfig:
        """Change the config (reply, dimension, chunk_interval, ...) while running."""
        return self.state.configure(**changes)

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        return self.state.requests(path)

    def reset(self) -> None:
        self.state.reset()

    def wait_until(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 2.0
    ) -> list[RecordedRequest]:
        return self.state.wait_until(predicate, timeout)

    async def await_until(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 2.0
    ) -> list[RecordedRequest]:
        """wait_until without blocking the caller's event loop."""
        return await asyncio.to_thread(self.state.wait_until, predicate, timeout)

    def start(self, timeout: float = 10.0) -> StubServer:
        _install_log_filter()
        sock = _listen("127.0.0.1", self._port)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = server = _uvicorn_server(StubApp(self.state))
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="openai-stub", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:  # uvicorn offers no event; poll with a deadline
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI stub server did not start")
            time.sleep(0.005)
        return self

    def stop(self, *, wait: bool = True) -> None:
        """Shut down; uvicorn needs ~0.2 s, which `wait=False` leaves to the daemon thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        if wait:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stub_fixture(scope: FixtureScope = "function", **config: Any) -> Any:
    """A pytest fixture yielding a started StubServer; assign it: `openai_stub = stub_fixture()`.

    Wider scopes share one server (and its log and faults) between tests; call reset() yourself.
    """
    import pytest

    def _fixture() -> Iterator[StubServer]:
        stub = StubServer(**config).start()
        yield stub
        stub.stop(wait=False)  # nothing reuses the port, so the test need not wait for it

    return pytest.fixture(scope=scope)(_fixture)


class RemoteStub(FaultSwitches):
    """Steers a stub in another process through its /_stub control routes (same fault API)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def faults(self) -> FaultSwitches:
        return self

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def add(self, spec: dict[str, Any]) -> None:
        self._call("POST", "/_stub/faults", spec)

    def clear(self) -> None:
        self._call("DELETE", "/_stub/faults")

    def reset(self) -> None:
        self._call("POST", "/_stub/reset", {})

    def configure(self, **changes: Any) -> Any:
        return self._call("POST", "/_stub/config", changes)

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        rows = self._call("GET", "/_stub/requests")["data"]
        return [RecordedRequest(**r) for r in rows if path is None or r["path"] == path]


@contextlib.contextmanager
def spawn_stub(*args: str, timeout: float = 20.0) -> Iterator[RemoteStub]:
    """Run the stub in a subprocess (CLI `args`, e.g. "--dimension", "8") on a free port."""
    env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.stubs.openai_stub", "--port", "0", *args],
        cwd=_REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the child prints its URL once it is listening
        if not line.startswith(_URL_LINE):
            raise RuntimeError(f"stub subprocess did not start (exit code {proc.poll()})")
        yield RemoteStub(line[len(_URL_LINE) :].strip())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible stub server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999, help="0 picks a free port")
    parser.add_argument("--dimension", type=int, default=StubConfig.dimension)
    parser.add_argument("--reply", default=None, help="fixed chat answer")
    parser.add_argument(
        "--chunk-interval", type=float, default=0.0, help="seconds between stream chunks"
    )
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    state = StubState(
        StubConfig(
            reply=args.reply,
            dimension=args.dimension,
            chunk_interval=args.chunk_interval,
            api_key=args.api_key,
        )
    )
    _install_log_filter()
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"{_URL_LINE}http://{host}:{port}", flush=True)
    _uvicorn_server(StubApp(state)).run(sockets=[sock])


if __name__ == "__main__":
    main()
