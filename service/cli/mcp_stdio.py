"""`citeline mcp`: an MCP server on stdin/stdout that forwards every message to a running
citeline's `/mcp` (Streamable HTTP) with the given key, for desktop clients that launch a
command. The tools are the service's own: this only carries the messages both ways."""

from __future__ import annotations

import sys

import anyio
import httpx
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

Incoming = ObjectReceiveStream[SessionMessage | Exception]
Outgoing = ObjectSendStream[SessionMessage]


async def _pump(source: Incoming, sink: Outgoing, side: str) -> None:
    async with sink:
        async for item in source:
            if isinstance(item, Exception):
                sys.stderr.write(f"citeline mcp: {side}: {item}\n")
                continue
            await sink.send(item)


async def forward(url: str, api_key: str | None) -> None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(30.0, read=300.0)  # an answer's stream may stay open a while
    async with (
        httpx.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(f"{url.rstrip('/')}/mcp", http_client=http) as (
            remote_in,
            remote_out,
            _,
        ),
        stdio_server() as (local_in, local_out),
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(_pump, remote_in, local_out, "from the service")
        await _pump(local_in, remote_out, "from the client")  # ends when stdin closes
        tasks.cancel_scope.cancel()


def serve(url: str, api_key: str | None) -> None:
    anyio.run(forward, url, api_key)
