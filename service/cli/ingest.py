"""`citeline ingest`: files and folders uploaded as batches, followed to the end.

Files are found recursively (hidden ones left out), those already indexed unchanged (the same
bytes, name and metadata in the collection: the service keeps each file's SHA-256) skipped,
the rest uploaded in batches of at most `MAX_FILES` files and `MAX_BYTES` bytes. A batch the
service refuses as a whole (a file of a type it does not read, or too large) is uploaded again
one file at a time, so that each bad file fails alone. Then every batch's status is polled
until no job is queued or running (its chunk count grows meanwhile); the jobs of a batch that
ended with failures are read once, for which files failed and why.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.cli.client import Api
from service.cli.errors import CliError

# What the service reads (it decides by content; these names are what a folder walk picks up
# without --glob).
KNOWN_SUFFIXES = frozenset(
    {".pdf", ".docx", ".pptx", ".html", ".htm", ".xhtml", ".md", ".markdown", ".txt", ".text"}
)
MAX_FILES = 100
MAX_BYTES = 8 * 1024 * 1024
POLL_S = 0.5
PAGE = 1000


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    size: int
    sha256: str


@dataclass(slots=True)
class Batch:
    batch_id: str
    jobs: dict[str, Path]  # job id -> the file it indexes
    done: int = 0
    failed: int = 0
    chunks: int = 0
    finished: bool = False


@dataclass(slots=True)
class Report:
    """What happened to every file; `progress()` the numbers a progress line shows."""

    started: float = field(default_factory=time.monotonic)
    total: int = 0
    skipped: list[Path] = field(default_factory=list)
    indexed: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return sum(b.chunks for b in self.batches)

    def progress(self) -> dict[str, Any]:
        done = sum(b.done + b.failed for b in self.batches)
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        left = self.total - done - self.refused()
        return {
            "event": "progress",
            "documents_done": done,
            "documents_total": self.total - self.refused(),
            "chunks": self.chunks,
            "failed": sum(b.failed for b in self.batches) + self.refused(),
            "skipped": len(self.skipped),
            "rate_per_s": round(rate, 2),
            "eta_s": round(left / rate, 1) if rate > 0 else None,
        }

    def refused(self) -> int:
        """Files refused at upload (they have no job to wait for)."""
        tracked = {p for b in self.batches for p in b.jobs.values()}
        return sum(1 for p, _ in self.failures if p not in tracked)

    def summary(self) -> dict[str, Any]:
        return {
            "indexed": [str(p) for p in self.indexed],
            "skipped": [str(p) for p in self.skipped],
            "failed": [{"path": str(p), "error": e} for p, e in self.failures],
            "chunks": self.chunks,
            "batches": [b.batch_id for b in self.batches],
            "seconds": round(time.monotonic() - self.started, 2),
        }


def find_files(paths: Iterable[Path], glob: str | None) -> list[Path]:
    """The files named, and those under the folders named (recursively, hidden ones left
    out), that match `glob` (else have a suffix the service reads); sorted, each once."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            found[path] = None
            continue
        if not path.is_dir():
            raise CliError(f"no such file or folder: {path}")
        for candidate in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in candidate.relative_to(path).parts)
            if candidate.is_file() and not hidden and _wanted(candidate, glob):
                found[candidate] = None
    return list(found)


def _wanted(path: Path, glob: str | None) -> bool:
    if glob is None:
        return path.suffix.lower() in KNOWN_SUFFIXES
    return fnmatch.fnmatch(path.name, glob) or path.match(glob)


def local_file(path: Path) -> LocalFile:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return LocalFile(path, path.stat().st_size, digest.hexdigest())


def indexed_files(api: Api, collection: str) -> set[tuple[str, str | None, str]]:
    """(sha256, filename, metadata as JSON) of every indexed file of the collection."""
    seen: set[tuple[str, str | None, str]] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"collection": collection, "limit": PAGE}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/documents", params=params)
        for doc in page["documents"]:
            if doc.get("sha256") and doc["state"] == "indexed":
                seen.add((doc["sha256"], doc.get("filename"), _canon(doc["metadata"])))
        cursor = page["next_cursor"]
        if not cursor:
            return seen


def _canon(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=True)


def groups(files: list[LocalFile]) -> Iterator[list[LocalFile]]:
    """Upload requests: at most MAX_FILES files and MAX_BYTES bytes (a bigger file alone)."""
    group: list[LocalFile] = []
    size = 0
    for f in files:
        if group and (len(group) == MAX_FILES or size + f.size > MAX_BYTES):
            yield group
            group, size = [], 0
        group.append(f)
        size += f.size
    if group:
        yield group


class Ingest:
    """One run of `citeline ingest`; `on_update` is called with the report after each change."""

    def __init__(
        self,
        api: Api,
        collection: str,
        metadata: dict[str, Any],
        on_update: Callable[[Report], None],
    ) -> None:
        self.api, self.collection, self.metadata = api, collection, metadata
        self.on_update = on_update
        self.report = Report()

    def run(self, paths: list[Path]) -> Report:
        known = indexed_files(self.api, self.collection)
        meta = _canon(self.metadata)
        todo: list[LocalFile] = []
        for path in paths:
            f = local_file(path)
            if (f.sha256, path.name, meta) in known:
                self.report.skipped.append(path)
            else:
                todo.append(f)
        self.report.total = len(todo)
        self.on_update(self.report)
        for group in groups(todo):
            self._upload(group)
            self.on_update(self.report)
        # Two paths with the same bytes are one document: count what there is to wait for.
        tracked = sum(len(b.jobs) for b in self.report.batches)
        self.report.total = tracked + self.report.refused()
        self._follow()
        return self.report

    def _upload(self, group: list[LocalFile]) -> None:
        try:
            self._send(group)
        except CliError as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403):
                raise  # the service, the key or the collection: no file would pass
            if len(group) == 1:
                self.report.failures.append((group[0].path, str(exc)))
                return
            for f in group:  # find the file(s) the service refused
                self._upload([f])

    def _send(self, group: list[LocalFile]) -> None:
        handles = [f.path.open("rb") for f in group]
        try:
            files = [("file", (f.path.name, h)) for f, h in zip(group, handles, strict=True)]
            data = {"collection": self.collection, "metadata": json.dumps(self.metadata)}
            body = self.api.post("/v1/documents/batch", files=files, data=data)
        finally:
            for h in handles:
                h.close()
        jobs = {d["job_id"]: f.path for d, f in zip(body["documents"], group, strict=True)}
        self.report.batches.append(Batch(body["batch_id"], jobs))

    def _follow(self) -> None:
        while True:
            open_batches = [b for b in self.report.batches if not b.finished]
            if not open_batches:
                return
            for batch in open_batches:
                self._poll(batch)
            self.on_update(self.report)
            if any(not b.finished for b in open_batches):
                # One status read per open batch per round, paced to stay well inside a
                # key's request rate.
                time.sleep(max(POLL_S, 0.1 * len(open_batches)))

    def _poll(self, batch: Batch) -> None:
        status = self.api.get(f"/v1/batches/{batch.batch_id}")
        counts = status["counts"]
        batch.done, batch.failed = counts["completed"], counts["failed"]
        batch.chunks = status["chunks"]
        if status["status"] == "in_progress":
            return
        batch.finished = True
        if not batch.failed:
            self.report.indexed.extend(batch.jobs.values())
            return
        for job_id, path in batch.jobs.items():  # which ones failed, and why
            job = self.api.get(f"/v1/jobs/{job_id}")
            if job["status"] == "completed":
                self.report.indexed.append(path)
            else:
                self.report.failures.append((path, job["error"] or job["status"]))
