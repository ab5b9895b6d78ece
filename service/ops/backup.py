"""Backups of the data a citeline process owns, taken while it serves, and their restore.

A backup directory holds `manifest.json`, `registry.sqlite3` (SQLite's online backup, on the
registry's own thread), `files/` (the uploaded originals and canonical texts, hard-linked
where the backup is on the same file system: they never change once written) and the store:
the Qdrant Edge shard's files (flushed, copied while the pipeline's store writes are paused;
searches go on), or with a Qdrant server a note naming the server-side snapshot its snapshot
API made. The registry is copied first, inside the same
pause: every version it calls live has all its chunks in the copied store. A Redis registry is
not included (Redis has its own: RDB or AOF, see the README).

Restore copies a backup into an empty data dir; the next start serves the same documents with
the same search results. Jobs that were running at backup time are queued again by that start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import tarfile
import time
from pathlib import Path
from typing import Any

from service.auth.sqlite_keys import ACCESS_FILE
from service.catalog.base import JobRegistry
from service.clients import embedding_record
from service.config import Settings
from service.jobs.base import JobQueue
from service.jobs.setup import SQLITE_FILE
from service.store import naming
from service.store.base import VectorStore

__all__ = ["BackupError", "archive", "restore", "take", "unpack"]

MANIFEST = "manifest.json"
FORMAT = 1
FILES = "files"
SERVER_STORE = "qdrant-server"


class BackupError(Exception):
    """A backup or restore that cannot be done as asked; the message says why."""


def store_dir(settings: Settings) -> Path:
    """Where the store's copy goes inside a backup (and, for Edge, inside the data dir)."""
    if settings.qdrant_url:
        return Path(SERVER_STORE)
    shard = naming.edge_shard_path(settings.data_dir, embedding_record(settings))
    return shard.relative_to(settings.data_dir)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a plain copy
        shutil.copy2(src, dst)


def copy_files(source: Path, target: Path) -> bool:
    """The files store (originals, texts) into `target`; False when there is none."""
    if not source.is_dir():
        return False
    ignore = shutil.ignore_patterns(".*.tmp")  # writes in progress
    shutil.copytree(source, target, copy_function=_link_or_copy, ignore=ignore)
    return True


async def take(
    settings: Settings, registry: JobRegistry, store: VectorStore, queue: JobQueue, target: Path
) -> dict[str, Any]:
    """Write a consistent backup into the new directory `target`; returns its manifest."""
    started = time.perf_counter()
    target.mkdir(parents=True)
    store_copy = store_dir(settings)
    async with queue.writes_paused():
        paused = time.perf_counter()
        has_registry = await registry.backup(target / SQLITE_FILE)
        has_access = await asyncio.to_thread(_copy_access, settings.data_dir, target)
        await asyncio.to_thread(store.snapshot, target / store_copy)
        has_files = await asyncio.to_thread(copy_files, settings.files_root, target / FILES)
        paused_s = time.perf_counter() - paused
    manifest = {
        "format": FORMAT,
        "created_at": time.time(),
        "registry": SQLITE_FILE if has_registry else None,
        "access": ACCESS_FILE if has_access else None,  # API keys and daily usage
        "store": store_copy.as_posix(),
        "files": FILES if has_files else None,
        "store_kind": "qdrant-server" if settings.qdrant_url else "qdrant-edge",
        "embedding": embedding_record(settings).metadata(),
        "jobs": await registry.counts(),
        "bytes": dir_bytes(target),
        "seconds": round(time.perf_counter() - started, 3),
        "writes_paused_s": round(paused_s, 3),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _copy_access(data_dir: Path, target: Path) -> bool:
    """The API keys and usage database (embedded mode), by SQLite's online backup."""
    source = data_dir / ACCESS_FILE
    if not source.exists():
        return False
    with (
        contextlib.closing(sqlite3.connect(source)) as db,
        contextlib.closing(sqlite3.connect(target / ACCESS_FILE)) as copy,
    ):
        db.backup(copy)
    return True


def archive(source: Path) -> Path:
    """`source` as an uncompressed tar beside it (`<source>.tar`); the directory is removed."""
    tar_path = source.with_name(source.name + ".tar")
    with tarfile.open(tar_path, "w") as tar:
        for entry in sorted(source.iterdir()):
            tar.add(entry, arcname=entry.name)
    shutil.rmtree(source)
    return tar_path


def unpack(tar_path: Path, target: Path) -> dict[str, Any]:
    """Extract a backup archive into the new directory `target`; returns its manifest."""
    target.mkdir(parents=True)
    with tarfile.open(tar_path, "r") as tar:
        tar.extractall(target, filter="data")  # no absolute paths, links out, or devices
    return read_manifest(target)


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a citeline backup: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source}: unknown backup format {manifest.get('format')!r}")
    return manifest


def restore(source: Path, settings: Settings) -> dict[str, Any]:
    """Copy the backup in `source` into the (empty) data dir; returns the manifest."""
    manifest = read_manifest(source)
    data = settings.data_dir
    store_copy = Path(manifest["store"])
    if manifest["store_kind"] == "qdrant-server":
        raise BackupError(
            "this backup's chunks are a snapshot on the Qdrant server "
            f"({source / store_copy / 'qdrant-snapshot.json'}): recover it with Qdrant's "
            "snapshot API (README, Operations), then restore the registry file by hand"
        )
    if store_copy != store_dir(settings):
        raise BackupError(
            f"the backup's store is {store_copy}, but these settings use {store_dir(settings)}:"
            " restore with the embedding settings the backup was taken with"
        )
    files = settings.files_root
    taken = [
        p for p in (data / SQLITE_FILE, data / ACCESS_FILE, data / naming.EDGE_DIR) if p.exists()
    ]
    if manifest.get("files") and files.is_dir() and any(files.iterdir()):
        taken.append(files)
    if taken:
        raise BackupError(
            f"the data dir {data} is not empty ({', '.join(p.name for p in taken)}): restore "
            "into an empty CITELINE_DATA_DIR, with the service stopped"
        )
    data.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / store_copy, data / store_copy)
    if manifest["registry"]:
        shutil.copy2(source / manifest["registry"], data / SQLITE_FILE)
    if manifest.get("access"):
        shutil.copy2(source / manifest["access"], data / ACCESS_FILE)
    if manifest.get("files"):
        shutil.copytree(source / manifest["files"], files, dirs_exist_ok=True)
    return manifest
