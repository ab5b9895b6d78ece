"""A server with API keys, and the keys tests need."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.telemetry.logs import JsonFormatter
from tests.conftest import LiveServer

ADMIN_KEY = "test-admin-key-0123456789abcdef"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Keyed:
    """A live server that requires keys, and a client for each key it hands out."""

    live: LiveServer

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = bearer(key) if key else {}
        return self.live.client(headers=headers, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_KEY)

    def mint(
        self,
        tenant: str = "acme",
        scopes: tuple[str, ...] = ("read", "write"),
        collections: list[str] | None = None,
        expires_in_s: float | None = None,
        name: str = "test",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "tenant": tenant, "scopes": list(scopes)}
        if collections is not None:
            body["collections"] = collections
        if expires_in_s is not None:
            expires = time.time() + expires_in_s
            body["expires_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)) + (
                f".{int((expires % 1) * 1e6):06d}+00:00"
            )
        with self.admin() as c:
            r = c.post("/v1/keys", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def index(self, key: str, timeout: float = 60, **doc: Any) -> dict[str, Any]:
        """POST one document with `key` and wait until its job completes."""
        with self.client(key) as c:
            r = c.post("/v1/documents", json=doc)
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            deadline = time.monotonic() + timeout
            while True:
                job = c.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("completed", "failed"):
                    assert job["status"] == "completed", job
                    return dict(r.json())
                assert time.monotonic() < deadline, f"job {job_id} did not finish"
                time.sleep(0.02)  # polling the job, not waiting for an event


def capture_json_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Format captured records as the service does (with their request context), at INFO."""
    caplog.handler.setFormatter(JsonFormatter())
    caplog.set_level("INFO")


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    out = []
    for line in caplog.text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
