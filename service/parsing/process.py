"""The parser pool: files are parsed in child processes, each bounded in time and memory.

PDFium can hang on a malformed file, or abort the process; a parser library can allocate
without bound. So parsing runs in `python -m service.parsing.child` processes (`workers` of
them, kept between files): a file that overruns `timeout_s` gets its process killed, one whose
process dies or runs out of memory fails with that reason, and the next file gets a fresh
process. Nothing else, neither the service nor the other files, notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from service.parsing.model import Format, Heading, Limits, Parsed, ParseError

log = logging.getLogger("citeline.parsing")


STARTUP_S = 60.0  # a new parser process loads its libraries before it says it is ready


class _Child:
    """One parser process and the two pipe ends it is spoken to through."""

    def __init__(self, memory_bytes: int) -> None:
        """Blocking: starts the process and waits until it is ready (ParseError if not)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.parsing.child", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a terminal's ^C reaches the service, which stops us
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        # The connections own duplicates of the pipe ends; the file objects are closed now.
        self.send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.recv = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        try:
            ready = self.recv.poll(STARTUP_S) and json.loads(self.recv.recv_bytes())
        except (EOFError, OSError, ValueError):
            ready = False
        if not ready:
            self.kill()
            raise ParseError("the parser process did not start")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        for conn in (self.send, self.recv):
            with contextlib.suppress(OSError):
                conn.close()

    def died(self) -> str:
        code = self.proc.wait()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"the parser process died ({name}) on this file"
        return f"the parser process exited with status {code} on this file"


class ParserPool:
    """`await parse(path, format)` → `Parsed`, or `ParseError` with the reason."""

    def __init__(self, workers: int, timeout_s: float, memory_mb: int, limits: Limits) -> None:
        self.timeout_s, self.limits = timeout_s, limits
        self.memory_bytes = memory_mb * 1024 * 1024
        self.max_rss_kib = 0  # the largest a parser process grew, for figures
        self._idle: list[_Child | None] = [None] * workers  # one slot per process
        self._free = asyncio.Semaphore(workers)
        self._closed = False

    async def parse(self, path: Path, fmt: Format) -> Parsed:
        request = json.dumps({"path": str(path), "format": fmt, "limits": asdict(self.limits)})
        async with self._free:
            if self._closed:
                raise ParseError("the parser pool is closed")
            child = self._idle.pop()
            try:
                if child is None or not child.alive:
                    child = None
                    child = await self._spawn()
                reply, child = await self._ask(child, request.encode())
            finally:
                if self._closed and child is not None:
                    await asyncio.to_thread(child.kill)
                    child = None
                self._idle.append(child)
        self.max_rss_kib = max(self.max_rss_kib, int(reply.get("max_rss_kib") or 0))
        if "ok" in reply:
            return _parsed(reply["ok"])
        error = str(reply.get("error"))
        if error == "memory":
            error = f"the parser ran out of memory (limit {self.memory_bytes >> 20} MiB)"
        raise ParseError(error)

    async def _spawn(self) -> _Child:
        """A new, ready parser process; one whose caller gave up meanwhile is killed."""
        starting = asyncio.ensure_future(asyncio.to_thread(_Child, self.memory_bytes))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                child = await starting  # under a second: never leave a process behind
                await asyncio.to_thread(child.kill)
            raise

    async def _ask(self, child: _Child, request: bytes) -> tuple[dict[str, Any], _Child | None]:
        """The child's reply; a child that hangs, dies or is cancelled is killed (and None)."""
        future = asyncio.get_running_loop().run_in_executor(
            None, _exchange, child, request, self.timeout_s
        )
        try:
            reply: dict[str, Any] | str = await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                child.proc.kill()  # the exchange thread sees the pipe close and cleans up
            with contextlib.suppress(Exception):
                await future
            raise
        if isinstance(reply, str):
            return {"error": reply}, None
        if reply.get("exit"):  # it ends itself after this reply: reap it
            await asyncio.to_thread(child.kill)
            return reply, None
        return reply, child

    async def close(self) -> None:
        self._closed = True
        for i, child in enumerate(self._idle):
            if child is not None:
                self._idle[i] = None
                await asyncio.to_thread(child.kill)


def _exchange(child: _Child, request: bytes, timeout_s: float) -> dict[str, Any] | str:
    """Blocking: send one request and wait for its reply; a string is the failure's reason."""
    try:
        child.send.send_bytes(request)
        if not child.recv.poll(timeout_s):
            child.kill()
            return f"parsing took longer than {timeout_s:g} s (CITELINE_PARSE_TIMEOUT_S)"
        reply: dict[str, Any] = json.loads(child.recv.recv_bytes())
        return reply
    except (EOFError, OSError, ValueError):
        reason = child.died()
        child.kill()
        return reason


def _parsed(raw: dict[str, Any]) -> Parsed:
    return Parsed(
        text=raw["text"],
        title=raw["title"],
        page_starts=list(raw["page_starts"]),
        page_labels=list(raw["page_labels"]),
        headings=[Heading(**h) for h in raw["headings"]],
        pages_without_text=list(raw["pages_without_text"]),
    )
