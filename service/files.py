"""Originals and canonical texts, one directory per document, one file per version.

    <files_dir>/<scope>/<document>/<version>.orig   the uploaded bytes (files only)
    <files_dir>/<scope>/<document>/<version>.txt    the text every chunk's start/end index into
                                                    (of a text posted as JSON: only where the
                                                    registry does not keep it, i.e. Redis)

`scope` is a hash of tenant and collection, `document` one of the document id, so no client
input becomes a path, two tenants never share a directory, and deleting a collection removes
one directory. Files are written to a temporary name, fsynced and
renamed: a reader sees a whole file or none, and an accepted original survives power loss.

With the arq queue and workers on other hosts, CITELINE_FILES_DIR must be a directory every
API and worker process mounts (NFS, a shared volume): the API writes originals, workers parse
them and write the texts, the API serves both.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from service.store.base import Scope

ORIGINAL, TEXT = "orig", "txt"


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def scope_folder(self, scope: Scope) -> Path:
        return self.root / _digest(f"{scope.tenant}\x1f{scope.collection}")

    def folder(self, scope: Scope, document_id: str) -> Path:
        return self.scope_folder(scope) / _digest(document_id)

    def path(self, scope: Scope, document_id: str, version: str, kind: str) -> Path:
        return self.folder(scope, document_id) / f"{version}.{kind}"

    def write(
        self,
        scope: Scope,
        document_id: str,
        version: str,
        kind: str,
        data: bytes,
        *,
        durable: bool,
    ) -> bool:
        """Store one file (fsynced when `durable`); False when it is already there.

        Originals are durable: a 202 promises them. The canonical text of a text posted as JSON
        is not: losing it in a power cut costs `/content`, never the index."""
        final = self.path(scope, document_id, version, kind)
        if final.exists():
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, final)
        if durable:
            _fsync_dir(final.parent)
        return True

    def read(self, scope: Scope, document_id: str, version: str, kind: str) -> bytes | None:
        try:
            return self.path(scope, document_id, version, kind).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, scope: Scope, document_id: str, version: str, kind: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(scope, document_id, version, kind).unlink()

    def remove_documents(self, scope: Scope, document_ids: Iterable[str]) -> None:
        """Every file of every version of the documents."""
        for document_id in document_ids:
            shutil.rmtree(self.folder(scope, document_id), ignore_errors=True)

    def remove_versions(self, scope: Scope, document_id: str, keep: set[str]) -> int:
        """Delete every version's files but those of `keep`; all of them when it is empty."""
        folder = self.folder(scope, document_id)
        if not keep:
            self.remove_documents(scope, [document_id])
            return 1
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in folder.iterdir():
                # Temporary names start with a dot: a write in progress is not touched.
                if not entry.name.startswith(".") and entry.name.split(".", 1)[0] not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()
                        removed += 1
        return removed

    def remove_collection(self, scope: Scope) -> None:
        """Every file of every document of the collection."""
        shutil.rmtree(self.scope_folder(scope), ignore_errors=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
