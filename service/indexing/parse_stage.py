"""The pipeline's first stage: a job's text and layout, from its original file or its row.

A text posted as JSON is its own canonical text. A file is parsed by the parser pool (child
processes bounded in time and memory, `service.parsing.process`), several at once, so one big
PDF never holds back the small files behind it. Either way the canonical text is written next
to the original (`service.files`), for `GET /v1/documents/{id}/content`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from service.catalog.base import JobRegistry, ParsedInfo, RegistryUnavailable
from service.files import ORIGINAL, TEXT, FileStore
from service.indexing.structure import Layout
from service.indexing.units import _Job
from service.parsing.model import FORMAT_OF_MEDIA_TYPE, ParseError
from service.parsing.process import ParserPool
from service.telemetry import metrics

log = logging.getLogger("citeline.pipeline")

Fail = Callable[[_Job, str], Awaitable[None]]


class ParseStage:
    def __init__(
        self, registry: JobRegistry, files: FileStore, parser: ParserPool, workers: int
    ) -> None:
        self.registry, self.files, self.parser = registry, files, parser
        self._slots = asyncio.Semaphore(workers)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self,
        jobs: asyncio.Queue[_Job],
        ready: asyncio.Queue[_Job],
        fail: Fail,
    ) -> None:
        while True:
            job = await jobs.get()
            if job.closed:
                continue
            row = job.row
            if row.media_type is None:  # posted as text: written with its chunks
                job.text, job.title = row.text, row.title
                await ready.put(job)
                continue
            await self._slots.acquire()
            task = asyncio.create_task(self._parse(job, ready, fail), name="parse")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _parse(self, job: _Job, ready: asyncio.Queue[_Job], fail: Fail) -> None:
        """Parse one file job and hand it on; whatever goes wrong ends the job, never the stage."""
        try:
            await self._parse_one(job, ready)
        except (ParseError, OSError) as exc:
            await fail(job, f"{exc}" if isinstance(exc, ParseError) else f"storage: {exc}")
        except Exception as exc:  # a task's boundary: the job must end, with a reason
            log.exception("job.parse_failed", extra={"job_id": job.row.job_id})
            await fail(job, f"parsing failed: {type(exc).__name__}")

    async def _parse_one(self, job: _Job, ready: asyncio.Queue[_Job]) -> None:
        row, scope = job.row, job.scope
        try:
            fmt = FORMAT_OF_MEDIA_TYPE.get(row.media_type or "")
            path = self.files.path(scope, row.document_id, row.version, ORIGINAL)
            if fmt is None:
                raise ParseError(f"no parser for {row.media_type}")
            if not await asyncio.to_thread(path.exists):
                raise ParseError(
                    "the original file is not there (deleted with its document, or this "
                    "process does not see CITELINE_FILES_DIR)"
                )
            started = time.perf_counter()
            parsed = await self.parser.parse(path, fmt)
            metrics.INGEST_STAGE.labels("parse").observe(time.perf_counter() - started)
        finally:
            self._slots.release()
        if job.closed:
            return
        title = row.title or parsed.title or row.filename
        job.text, job.title = parsed.text, title
        job.layout = Layout(
            parsed.page_starts, parsed.page_labels,
            [(h.offset, h.level, h.title) for h in parsed.headings],
        )  # fmt: skip
        text = parsed.text.encode("utf-8", "surrogatepass")
        await asyncio.to_thread(
            self.files.write, scope, row.document_id, row.version, TEXT, text, durable=True
        )
        pages = len(parsed.page_starts) or None
        info = ParsedInfo(
            title, len(parsed.text), pages, tuple(parsed.pages_without_text),
            len(parsed.text.encode()),
        )  # fmt: skip
        try:
            await self.registry.parsed(row, info)
        except RegistryUnavailable:  # display only: the chunks carry what matters
            log.warning("job.parsed_lost", extra={"job_id": row.job_id})
        await ready.put(job)

    @property
    def active(self) -> int:
        """Files being parsed now."""
        return len(self._tasks)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.parser.close()
