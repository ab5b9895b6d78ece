"""`python -m service` as a real subprocess on loopback, for the tests that need a process:
signals, exit status, what it logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_until
from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def client(self, timeout: float = 30, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> float:
        """SIGTERM; returns when it was sent (time.monotonic())."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        return sent

    def wait_exit(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the service did not exit within {timeout} s") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            self.wait_exit()


def start_service(data_dir: Path, log_path: Path, **settings: Any) -> ServiceProcess:
    """Start `python -m service` with these CITELINE_* settings and wait until it is ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
    env.update(
        CITELINE_DATA_DIR=str(data_dir),
        CITELINE_HOST="127.0.0.1",
        CITELINE_PORT=str(port),
        CITELINE_LOG_LEVEL="info",
        PYTHONPATH=str(REPO),
    )
    env.update({f"CITELINE_{k.upper()}": str(v) for k, v in settings.items()})
    data_dir.mkdir(parents=True, exist_ok=True)
    out = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=data_dir,  # no .env of the repository picked up
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    service = ServiceProcess(proc, f"http://127.0.0.1:{port}", data_dir, log_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the service exited ({proc.returncode}):\n{service.log()}")
        with contextlib.suppress(httpx.HTTPError), service.client(timeout=2) as c:
            return c.get("/readyz").status_code == 200
        return False

    try:
        wait_until(ready, timeout=60, interval=0.1)
    except BaseException:
        service.stop()
        raise
    return service
