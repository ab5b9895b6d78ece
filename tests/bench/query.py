"""Phase (d): `/v1/query` over HTTP with the extractive answerer, JSON and SSE."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.bench.metrics import latency_ms
from tests.bench.server import ServerProcess, log


def _post_query(c: httpx.Client, question: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = c.post("/v1/query", json={"question": question})
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return elapsed, body


def query_latency(server: ServerProcess, questions: list[str], warmup: int) -> dict[str, Any]:
    """Sequential non-streaming queries from one client."""
    client_s: list[float] = []
    server_ms: list[float] = []
    answered = 0
    with server.client() as c:
        for q in questions[:warmup]:
            _post_query(c, q)
        for i, q in enumerate(questions, start=1):
            elapsed, body = _post_query(c, q)
            client_s.append(elapsed)
            server_ms.append(float(body["latency_ms"]) / 1000.0)
            answered += bool(body["sources"])
            if i % 250 == 0:
                log(f"/v1/query: {i}/{len(questions)}")
    return {
        "questions": len(questions),
        "answered_with_sources": answered,
        "latency_ms": latency_ms(client_s),
        "server_reported_latency_ms": latency_ms(server_ms),
    }


def _one_stream(c: httpx.Client, question: str) -> tuple[float, float, float]:
    """Seconds to the response headers, to the first body byte, and to the end of the stream."""
    started = time.perf_counter()
    body = {"question": question, "stream": True}
    with c.stream("POST", "/v1/query", json=body) as r:
        headers_at = time.perf_counter()
        r.raise_for_status()
        first_at = None
        for _ in r.iter_raw():
            if first_at is None:
                first_at = time.perf_counter()
        ended = time.perf_counter()
    return headers_at - started, (first_at or ended) - started, ended - started


def stream_ttfb(server: ServerProcess, questions: list[str], warmup: int) -> dict[str, Any]:
    heads: list[float] = []
    firsts: list[float] = []
    totals: list[float] = []
    with server.client() as c:
        for q in questions[:warmup]:
            _one_stream(c, q)
        for q in questions:
            head, first, total = _one_stream(c, q)
            heads.append(head)
            firsts.append(first)
            totals.append(total)
    return {
        "questions": len(questions),
        "headers_ms": latency_ms(heads),
        "first_byte_ms": latency_ms(firsts),
        "complete_ms": latency_ms(totals),
    }
