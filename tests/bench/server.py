"""A real citeline server as a subprocess on 127.0.0.1, plus the HTTP helpers the benches share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the final JSON object."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def report(result: dict[str, Any], out: Path | None, started: float | None = None) -> int:
    """Print the result as the run's one JSON object (and write it to `out`); exit status 0."""
    if started is not None:
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def http_client(url: str, timeout: float = 120.0) -> httpx.Client:
    # trust_env=False: never route loopback traffic through a proxy from the environment.
    return httpx.Client(base_url=url, timeout=timeout, trust_env=False)


def _server_env(data_dir: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITELINE_")}
    env.update(
        CITELINE_DATA_DIR=str(data_dir),
        CITELINE_HOST=LOOPBACK,
        CITELINE_PORT=str(port),
        CITELINE_LOG_LEVEL="warning",
    )
    # The server runs outside the repo (no .env picked up), importing this checkout's code.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return http_client(self.url, timeout)

    def status_kib(self, field: str) -> int | None:
        """A `kB` field of /proc/PID/status (VmHWM, VmRSS), or None once the process is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return None

    def memory_mib(self) -> dict[str, float | None]:
        """Peak and current RSS, and the current RSS split into anonymous and file-backed."""
        fields = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
        return {
            f: None if (k := self.status_kib(f)) is None else round(k / 1024, 1) for f in fields
        }

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server used so far (from /proc/PID/stat)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(timeout=5) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with code {self.proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    r = c.get("/readyz")
                    if r.status_code == 200:
                        body: dict[str, Any] = r.json()
                        return body
                time.sleep(0.1)
        raise TimeoutError(f"server not ready within {timeout} s")

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"server {self.pid} ignored SIGTERM for {grace} s; killing it")
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=data_dir,
        env=_server_env(data_dir, port, extra_env or {}),
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,  # keep our stdout for the JSON result
        stderr=sys.stderr,
    )
    server = ServerProcess(proc, f"http://{LOOPBACK}:{port}", data_dir)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_server(
    data_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A started server that is always stopped, whatever happens inside the block."""
    server = start_server(data_dir, extra_env)
    log(f"server {server.pid} ready on {server.url} (data {data_dir})")
    try:
        yield server
    finally:
        code = server.stop()
        log(f"server {server.pid} stopped (exit code {code})")


def request_with_retry(
    client: httpx.Client, method: str, path: str, max_wait: float = 120.0, **kwargs: Any
) -> httpx.Response:
    """A request retried on a dropped connection and on 503 + Retry-After (a full queue).

    Only for idempotent calls: reads, and document posts (the same content posted again
    returns the existing job). A connection can drop when the server's event loop stalls
    past uvicorn's keep-alive timeout and closes an idle connection as a request arrives.
    """
    deadline = time.monotonic() + max_wait
    while True:
        try:
            r = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise
            log(f"{method} {path}: {exc!r}; retrying")
            time.sleep(0.5)
            continue
        if r.status_code != 503 or time.monotonic() > deadline:
            r.raise_for_status()
            return r
        time.sleep(min(float(r.headers.get("retry-after", "1")), 5.0))


def post_with_retry(
    client: httpx.Client, path: str, body: dict[str, Any], max_wait: float = 120.0
) -> httpx.Response:
    return request_with_retry(client, "POST", path, max_wait, json=body)


def job_counts(client: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = request_with_retry(client, "GET", "/readyz").json()["jobs"]
    return counts


def finished(counts: dict[str, int]) -> int:
    return counts.get("completed", 0) + counts.get("failed", 0)


def wait_all_settled(client: httpx.Client, expected: int, timeout: float) -> dict[str, int]:
    """Wait until at least `expected` jobs ended and none is queued or running."""
    deadline = time.monotonic() + timeout
    last_log = 0.0
    while True:
        counts = job_counts(client)
        idle = counts.get("queued", 0) == 0 and counts.get("running", 0) == 0
        if finished(counts) >= expected and idle:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not settled within {timeout} s: {counts}")
        if time.monotonic() - last_log > 10:
            log(f"waiting for jobs: {counts} (expecting {expected})")
            last_log = time.monotonic()
        time.sleep(0.1)


def total_chunks(client: httpx.Client, collection: str = "default", max_pages: int = 10_000) -> int:
    """Sum of `chunks` over every document of a collection (GET /v1/documents, paged)."""
    total, cursor = 0, None
    for _ in range(max_pages):
        params: dict[str, Any] = {"collection": collection, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = request_with_retry(client, "GET", "/v1/documents", params=params).json()
        total += sum(int(d["chunks"]) for d in page["documents"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total
    raise RuntimeError(f"more than {max_pages} pages of documents")


def dir_size_bytes(path: Path) -> int:
    """Bytes of the files under `path` (os.walk: pathlib's rglob took minutes at 500k folders)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(folder, name)).st_size
    return total


def disk_mib(path: Path) -> dict[str, float]:
    """Size of a directory and of each of its top-level entries, in MiB."""
    sizes = {p.name: dir_size_bytes(p) for p in sorted(path.iterdir())}
    return {
        "total": round(sum(sizes.values()) / 2**20, 1),
        **{name: round(n / 2**20, 1) for name, n in sizes.items()},
    }


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
