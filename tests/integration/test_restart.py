"""A server killed right after its 202s resumes and finishes every accepted job on restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, wait_until


def spawn(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CITELINE_DATA_DIR": str(data_dir),
        "CITELINE_PORT": str(port),
        "CITELINE_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "service"], env=env)

    def up() -> bool:
        assert proc.poll() is None, "server exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=60, interval=0.05)
    return proc


def test_killed_after_202_then_restarted_finishes_the_jobs(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    words = "granite basalt obsidian pumice marble slate quartz feldspar mica gneiss".split()  # noqa: SIM905
    docs = [
        {
            "id": f"rock{i}",
            "text": " ".join(f"{words[(i + k) % 10]} sample {i} line {k}." for k in range(400)),
        }
        for i in range(40)
    ]
    proc = spawn(tmp_path, port)
    try:
        r = httpx.post(f"{url}/v1/documents/batch", json={"documents": docs}, timeout=30)
        assert r.status_code == 202
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    job_ids = [d["job_id"] for d in r.json()["documents"]]

    with sqlite3.connect(tmp_path / "registry.sqlite3") as db:
        unfinished = db.execute("SELECT COUNT(*) FROM jobs WHERE status != 'completed'").fetchone()[
            0
        ]
        recorded = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert recorded == len(docs), "every 202 was durable before it was sent"
    assert unfinished > 0, "the kill came too late to test resumption"

    proc = spawn(tmp_path, port)
    try:

        def all_done() -> list[dict[str, Any]] | None:
            jobs = [httpx.get(f"{url}/v1/jobs/{j}", timeout=5).json() for j in job_ids]
            return jobs if all(j["status"] == "completed" for j in jobs) else None

        jobs = wait_until(all_done, timeout=120, interval=0.2)
        assert all(j["chunks_done"] == j["chunks_total"] > 0 for j in jobs)
        hits = httpx.post(
            f"{url}/v1/search", json={"query": "sample 7 obsidian", "max_results": 50}, timeout=10
        ).json()
        assert "rock7" in {h["document_id"] for h in hits["results"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
