"""A download whose file is deleted after the route opened it is still sent whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.opened_file import OpenedFileResponse, open_file


async def _send(response: OpenedFileResponse, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    sent: list[Any] = []
    scope = {"type": "http", "method": "GET", "headers": headers, "asgi": {"spec_version": "2.4"}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response(scope, receive, send)
    return sent


async def test_a_file_unlinked_after_it_was_opened_is_sent_whole_and_closed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "original.pdf"
    path.write_bytes(b"%PDF-1.7 " + b"x" * 100_000)
    handle = await open_file(path)
    assert handle is not None
    path.unlink()  # the document is deleted before the response is sent
    sent = await _send(OpenedFileResponse(handle, media_type="application/pdf"), [])
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-length"] == b"100009"
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"%PDF-1.7 " + b"x" * 100_000
    assert handle.closed


async def test_a_range_is_read_from_the_opened_file(tmp_path: Path) -> None:
    path = tmp_path / "original.bin"
    path.write_bytes(bytes(range(256)))
    handle = await open_file(path)
    assert handle is not None
    path.unlink()
    sent = await _send(OpenedFileResponse(handle), [(b"range", b"bytes=10-19")])
    assert sent[0]["status"] == 206
    assert b"".join(m.get("body", b"") for m in sent[1:]) == bytes(range(10, 20))


async def test_a_file_already_gone_is_none(tmp_path: Path) -> None:
    assert await open_file(tmp_path / "missing") is None
