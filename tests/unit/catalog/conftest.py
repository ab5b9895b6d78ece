"""Both registries behind one fixture: SQLite (embedded) and Redis (a real server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.catalog.base import JobRegistry
from service.catalog.redis_registry import RedisRegistry
from service.catalog.sqlite_registry import SqliteRegistry


@pytest.fixture(params=["sqlite", "redis"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobRegistry]:
    made: Any
    if request.param == "sqlite":
        made = SqliteRegistry(tmp_path / "registry.sqlite3")
    else:
        made = RedisRegistry.from_url(request.getfixturevalue("redis_server").url, timeout_s=5)
    await made.open()
    yield made
    await made.close()
