"""`python -m service backup DIR` and `python -m service restore DIR`.

`backup` asks the running service for a backup (`POST /v1/admin/backup`, with the
CITELINE_METRICS_TOKEN bearer token) and unpacks it into DIR, so it works from any host that
reaches the service (a `kubectl port-forward` will do). `restore` copies DIR into the empty
CITELINE_DATA_DIR of a stopped service.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from service.config import Settings
from service.ops import backup

FETCH_TIMEOUT = httpx.Timeout(30.0, read=3600.0)  # the service copies first, then sends


def _say(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))


def _fail(message: str) -> int:
    print(f"citeline: {message}", file=sys.stderr)
    return 1


def default_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def fetch(settings: Settings, directory: str, url: str | None) -> int:
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return _fail(f"{target} exists and is not an empty directory")
    if target.exists():
        target.rmdir()
    base = (url or default_url(settings)).rstrip("/")
    admin = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
    token = settings.metrics_bearer or admin  # the route takes either
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    part = target.with_name(target.name + ".tar.part")
    started = time.perf_counter()
    try:
        with httpx.stream(
            "POST", f"{base}/v1/admin/backup", headers=headers, timeout=FETCH_TIMEOUT,
            trust_env=False,
        ) as response:  # fmt: skip
            if response.status_code != 200:
                response.read()
                return _fail(f"the service refused the backup ({response.status_code}): "
                             f"{_detail(response)}")  # fmt: skip
            with part.open("wb") as out:
                for block in response.iter_bytes(1 << 20):
                    out.write(block)
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        return _fail(f"no backup from {base}: {exc!r} (is the service running there?)")
    try:
        manifest = backup.unpack(part, target)
    finally:
        part.unlink(missing_ok=True)
    _say({**manifest, "dir": str(target), "fetch_seconds": round(time.perf_counter() - started, 3)})
    return 0


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:200]))
    except ValueError:
        return response.text[:200]


def restore(settings: Settings, directory: str) -> int:
    try:
        manifest = backup.restore(Path(directory), settings)
    except backup.BackupError as exc:
        return _fail(str(exc))
    _say({**manifest, "restored_into": str(settings.data_dir)})
    return 0
