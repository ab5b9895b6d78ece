"""A file download that a concurrent delete cannot break.

Starlette's `FileResponse` stats and opens its path only when it sends, so a document deleted
between the route and the send (its files removed) turned the download into a 500 (seen by the
contract test's fuzzing). Opened in the route, the file stays readable after it is unlinked.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask


async def open_file(path: Path) -> BinaryIO | None:
    """The file opened for reading, or None when it is gone."""
    try:
        return await asyncio.to_thread(path.open, "rb")
    except FileNotFoundError:
        return None


class OpenedFileResponse(FileResponse):
    """A `FileResponse` (ranges, ETag, Last-Modified) over an already opened file, closed
    once sent."""

    def __init__(self, handle: BinaryIO, **kwargs: Any) -> None:
        self._handle = handle
        stat = os.fstat(handle.fileno())
        super().__init__(
            handle.name, stat_result=stat, background=BackgroundTask(handle.close), **kwargs
        )

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        # Starlette's one place that opens `path` (each range response opens it once).
        await asyncio.to_thread(self._handle.seek, 0)
        yield anyio.wrap_file(self._handle)
