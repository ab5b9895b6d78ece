"""API keys in SQLite under the data dir (embedded mode: one process serves the API).

Every key is held in memory as well, so the check on each request is a dict lookup; a
revocation changes the memory and the file together, so it holds from the next request on.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

from service.auth.keys import KeyRecord

ACCESS_FILE = "access.sqlite3"  # in the data dir: API keys, and daily usage (quotas.usage)

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    scopes TEXT NOT NULL,
    collections TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    secret_hash TEXT NOT NULL
);
"""


class SqliteKeyStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one writer at a time on the connection
        self._keys: dict[str, KeyRecord] = {}

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        db = sqlite3.connect(self._path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA secure_delete=ON")  # a revoked key's hash leaves the file
        db.executescript(SCHEMA)
        self._db = db
        for row in db.execute("SELECT * FROM api_keys ORDER BY created_at"):
            record = _record(row)
            self._keys[record.id] = record

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def add(self, record: KeyRecord) -> None:
        await asyncio.to_thread(self._write, _INSERT, _row(record))
        self._keys[record.id] = record

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    async def list(self, tenant: str | None, limit: int) -> list[KeyRecord]:
        found = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        return sorted(found, key=lambda k: (k.created_at, k.id))[:limit]

    async def revoke(self, key_id: str, tenant: str | None) -> bool:
        record = self._keys.get(key_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            return False
        del self._keys[key_id]  # refused from now on, before the file is even written
        await asyncio.to_thread(self._write, "DELETE FROM api_keys WHERE id=?", (key_id,))
        return True

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            if self._db is None:
                raise RuntimeError("key store is not open")
            with self._db:
                self._db.execute(sql, args)


_INSERT = "INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?)"


def _row(r: KeyRecord) -> tuple[object, ...]:
    collections = None if r.collections is None else json.dumps(list(r.collections))
    return (
        r.id, r.name, r.tenant, json.dumps(list(r.scopes)), collections, r.created_at,
        r.expires_at, r.secret_hash,
    )  # fmt: skip


def _record(row: tuple[object, ...]) -> KeyRecord:
    key_id, name, tenant, scopes, collections, created, expires, digest = row
    return KeyRecord(
        id=str(key_id),
        name=str(name),
        tenant=str(tenant),
        scopes=tuple(json.loads(str(scopes))),
        collections=None if collections is None else tuple(json.loads(str(collections))),
        created_at=float(created),  # type: ignore[arg-type]
        expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        secret_hash=str(digest),
    )
