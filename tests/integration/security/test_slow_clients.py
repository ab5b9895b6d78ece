"""A client that trickles its request (slowloris) is cut within the configured bound, over a
real socket: the head by CITELINE_HEADER_TIMEOUT_S, the body by CITELINE_BODY_TIMEOUT_S."""

from __future__ import annotations

import socket
import time
from typing import Any

HEAD_S, BODY_S = 1.0, 1.5


def _port(live: Any) -> int:
    return int(live.url.rsplit(":", 1)[1])


def _trickle(port: int, pieces: list[bytes], gap_s: float, limit_s: float) -> tuple[float, bytes]:
    """Send `pieces` one every `gap_s` until the server closes; (seconds until closed, reply)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit_s)
    started = time.monotonic()
    reply = b""
    try:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:  # reset: the server closed on us
                break
            sock.settimeout(gap_s)  # the pause between bytes, spent waiting for the server
            try:
                got = sock.recv(65536)
            except TimeoutError:
                continue
            reply += got
            if not got:
                break
            while got := sock.recv(65536):  # the rest of the server's answer, then EOF
                reply += got
            break
        return time.monotonic() - started, reply
    finally:
        sock.close()


def test_a_trickled_head_is_cut_with_408(make_server: Any) -> None:
    live = make_server(header_timeout_s=HEAD_S, body_timeout_s=BODY_S)
    head = b"GET /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    pieces = [head[i : i + 1] for i in range(len(head))]  # one byte every 0.2 s: ~40 s in all
    elapsed, reply = _trickle(_port(live), pieces, gap_s=0.2, limit_s=10)
    assert elapsed < HEAD_S + 1.0, elapsed
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"application/problem+json" in reply


def test_a_silent_connection_is_closed(make_server: Any) -> None:
    live = make_server(header_timeout_s=HEAD_S)
    with socket.create_connection(("127.0.0.1", _port(live)), timeout=10) as sock:
        started = time.monotonic()
        reply = sock.recv(65536)  # blocks until the server gives up on us
        assert time.monotonic() - started < HEAD_S + 1.0
        assert reply.startswith(b"HTTP/1.1 408 ")


def test_a_trickled_body_is_cut(make_server: Any) -> None:
    live = make_server(header_timeout_s=HEAD_S, body_timeout_s=BODY_S)
    body = b'{"text": "' + b"slow " * 200 + b'"}'
    head = (
        b"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    pieces = [head] + [body[i : i + 4] for i in range(0, len(body), 4)]
    elapsed, reply = _trickle(_port(live), pieces, gap_s=0.2, limit_s=15)
    assert elapsed < BODY_S + 1.5, elapsed
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    with live.client() as c:  # nothing half-sent was accepted
        assert c.get("/v1/documents").json()["documents"] == []


def test_prompt_clients_are_not_affected(make_server: Any) -> None:
    live = make_server(header_timeout_s=HEAD_S, body_timeout_s=BODY_S)
    with live.client() as c:  # one kept-alive connection, idle between requests for a while
        for _ in range(3):
            assert c.post("/v1/documents", json={"text": "prompt"}).status_code == 202
        streamed = c.post("/v1/query", json={"question": "prompt?", "stream": True})
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
