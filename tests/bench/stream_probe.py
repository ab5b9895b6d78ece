"""A lean HTTP/1.1 client for streaming-latency benches: when did each marker first arrive?

The latency benches run the load client, the stub LLM and citeline on one 2-core machine, so
the client's own CPU cost lands in every figure. httpx spends ~8 ms of CPU per streamed
answer (line splitting, decoding, its connection pool); this client reads the chunked body
as it comes, looks for a few byte patterns until each is found, and keeps connections alive,
at a fraction of that. Baseline and citeline requests go through the same client.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_TAIL = 256  # bytes kept from the previous read, so that a marker split across reads is found


class ProbeError(RuntimeError):
    pass


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class StreamProbe:
    """POSTs JSON to one origin; `post` returns the seconds to the first match of each pattern."""

    url: str
    idle: list[_Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/")

    async def post(
        self,
        path: str,
        body: bytes,
        patterns: Mapping[str, re.Pattern[bytes]],
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, float]:
        started = time.perf_counter()
        conn = self.idle.pop() if self.idle else await self._connect()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.writer.write(
            (
                f"POST {self.base_path}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode()
            + body
        )
        try:
            found = await self._read(conn, patterns, started)
        except BaseException:
            conn.writer.close()
            raise
        self.idle.append(conn)
        return found

    async def aclose(self) -> None:
        while self.idle:
            self.idle.pop().writer.close()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        return _Connection(reader, writer)

    async def _read(
        self, conn: _Connection, patterns: Mapping[str, re.Pattern[bytes]], started: float
    ) -> dict[str, float]:
        head = await conn.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lowered = head.lower()
        found: dict[str, float] = {}
        tail = b""

        def scan(data: bytes) -> None:
            nonlocal tail
            now = time.perf_counter() - started
            window = tail + data
            for name, pattern in patterns.items():
                if name not in found and pattern.search(window):
                    found[name] = now
            tail = window[-_TAIL:]

        if b"transfer-encoding: chunked" in lowered:
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await conn.reader.readexactly(size + 2)
                if size == 0:
                    break
                scan(data[:-2])
        else:
            match = re.search(rb"content-length:\s*(\d+)", lowered)
            scan(await conn.reader.readexactly(int(match.group(1))) if match else b"")
        if status != 200:
            raise ProbeError(f"HTTP {status}")
        return found
