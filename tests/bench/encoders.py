"""Stream encoders: overhead per event, and time to first token per format against plain SSE.

    python -m tests.bench.encoders [--requests 60] [--repeat 300] [--out FILE]

Prints one JSON object on stdout (progress on stderr):
  encoders_us_per_event  CPU time to turn one answer event into wire bytes, per format (median
                         of 5 rounds over a synthetic run: 5 sources, 200 deltas, citations,
                         usage, done); `delta` is the hot path alone; `vs_sse` the difference
                         to the service's own SSE encoder; `resume_buffer` the in-memory run
                         buffer's append + replay per frame (UI stream only).
  ttft_ms                request sent → first answer text received over loopback, against a
                         server subprocess on a small corpus, formats interleaved; p50/p90 and
                         the p50 difference to SSE (`/v1/query` with `stream: true`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas.query import Source
from service.query.answering import (
    AnswerEvent,
    CitationsEvent,
    DeltaEvent,
    DoneEvent,
    SourcesEvent,
    UsageEvent,
)
from service.streams.data_stream import DataStreamEncoder
from service.streams.live import sse_frame
from service.streams.openai_chunks import OpenAIChunkEncoder
from service.streams.resume import MemoryRunBuffer
from service.streams.sse import event_payload
from service.streams.ui_message import UIMessageEncoder, dumps
from tests.bench.server import http_client, log, report, running_server
from tests.integration.corpus import DOCS

QUESTION = "Which volcano in Sicily is most active?"


def synthetic_run(deltas: int = 200) -> list[AnswerEvent]:
    text = "Mount Etna in Sicily is one of the most active volcanoes in the world. " * 8
    sources = [
        Source(
            n=n,
            document_id=f"doc{n}",
            chunk_id=f"chunk-{n}",
            title=f"Title {n}",
            source=f"https://example.org/{n}",
            text=text,
            start=0,
            end=len(text),
            score=5.0 / n,
            relevance=1.0 / n,
            metadata={"topic": "geology", "year": 2020},
            cited=False,
        )
        for n in range(1, 6)
    ]
    words = [DeltaEvent(" word") for _ in range(deltas)]
    answer = " word" * deltas
    return [
        SourcesEvent(sources),
        *words,
        CitationsEvent([1, 2]),
        UsageEvent(120, deltas),
        DoneEvent(answer, "extractive", 12.5, 120 + deltas),
    ]


def sse_bytes(events: list[AnswerEvent]) -> int:
    size = 0
    for seq, event in enumerate(events, 1):
        name, body = event_payload(event)
        size += len(sse_frame(dumps(body), event=name, id=str(seq)))
    return size


def ui_bytes(events: list[AnswerEvent]) -> int:
    encoder, size, seq = UIMessageEncoder("msg_bench"), 0, 0
    for event in events:
        for chunk in encoder.encode(event):
            seq += 1
            size += len(sse_frame(dumps(chunk), id=f"0123456789abcdef-{seq}"))
    return size


def data_bytes(events: list[AnswerEvent]) -> int:
    encoder = DataStreamEncoder("msg_bench", QUESTION, 5)
    return sum(len(line.encode()) for e in events for line in encoder.encode(e))


def openai_bytes(events: list[AnswerEvent]) -> int:
    encoder = OpenAIChunkEncoder("citeline", include_usage=True)
    return sum(len(sse_frame(dumps(c))) for e in events for c in encoder.encode(e))


ENCODERS: dict[str, Callable[[list[AnswerEvent]], int]] = {
    "sse": sse_bytes,
    "ui_message": ui_bytes,
    "data_stream": data_bytes,
    "openai": openai_bytes,
}


def per_event_us(
    encode: Callable[[list[AnswerEvent]], int], events: list[AnswerEvent], repeat: int
) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            encode(events)
        rounds.append((time.perf_counter() - start) / (repeat * len(events)) * 1e6)
    return round(statistics.median(rounds), 3)


async def buffer_us_per_frame(frames: int = 2000) -> float:
    buffer = MemoryRunBuffer(ttl_s=60, max_runs=10)
    start = time.perf_counter()
    await buffer.open("0123456789abcdef", "bench")
    for seq in range(1, frames + 1):
        await buffer.append("0123456789abcdef", seq, '{"type":"text-delta","id":"t1","delta":" w"}')
    await buffer.finish("0123456789abcdef", frames + 1)
    async for _ in buffer.read("0123456789abcdef", 0):
        pass
    return round((time.perf_counter() - start) / frames * 1e6, 3)


def encoder_figures(repeat: int) -> dict[str, Any]:
    run, deltas = synthetic_run(), [DeltaEvent(" word")] * 200
    out: dict[str, Any] = {}
    for name, encode in ENCODERS.items():
        out[name] = {
            "all_events": per_event_us(encode, run, repeat),
            "delta": per_event_us(encode, deltas, repeat),
            "bytes_per_run": encode(run),
        }
    for name in ENCODERS:
        out[name]["vs_sse"] = round(out[name]["all_events"] - out["sse"]["all_events"], 3)
    out["resume_buffer"] = {"append_and_replay_per_frame": asyncio.run(buffer_us_per_frame())}
    return out


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "text", "text": text}]}


REQUESTS: dict[str, tuple[str, dict[str, Any], Callable[[str], bool]]] = {
    "sse": (
        "/v1/query",
        {"question": QUESTION, "stream": True},
        lambda line: line.startswith("data: ") and '"text":' in line,
    ),
    "ui_message": (
        "/api/chat",
        {"id": "bench", "messages": [_user(QUESTION)], "trigger": "submit-message"},
        lambda line: '"type":"text-delta"' in line,
    ),
    "data_stream": (
        "/api/chat",
        {"messages": [{"role": "user", "content": QUESTION}]},
        lambda line: line.startswith("0:"),
    ),
    "openai": (
        "/v1/chat/completions",
        {"model": "citeline", "stream": True, "messages": [{"role": "user", "content": QUESTION}]},
        lambda line: '"content":"' in line and '"content":""' not in line,
    ),
}


def ttft_figures(requests: int, warmup: int = 5) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in REQUESTS}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        with server.client() as c:
            r = c.post("/v1/documents/batch", json={"documents": DOCS})
            r.raise_for_status()
            for doc in r.json()["documents"]:
                while c.get(f"/v1/jobs/{doc['job_id']}").json()["status"] not in (
                    "completed",
                    "failed",
                ):
                    time.sleep(0.05)
        log(f"ttft: {requests} requests per format after {warmup} warm-up rounds")
        with http_client(server.url, timeout=30) as c:
            for i in range(warmup + requests):
                for name, (path, body, is_text) in REQUESTS.items():
                    start = time.perf_counter()
                    with c.stream("POST", path, json=body) as r:
                        first = None
                        for line in r.iter_lines():
                            if first is None and is_text(line):
                                first = time.perf_counter() - start
                    if first is None:
                        raise RuntimeError(f"{name}: no text in the stream")
                    if i >= warmup:
                        samples[name].append(first * 1000)
    base = statistics.median(samples["sse"])
    out: dict[str, Any] = {}
    for name, values in samples.items():
        values.sort()
        p50 = statistics.median(values)
        out[name] = {
            "p50": round(p50, 2),
            "p90": round(values[int(0.9 * (len(values) - 1))], 2),
            "vs_sse_p50": round(p50 - base, 2),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=60, help="TTFT samples per format")
    p.add_argument("--repeat", type=int, default=100, help="encoder runs per timing round")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    args = p.parse_args(argv)
    log("encoders: overhead per event")
    result = {
        "encoders_us_per_event": encoder_figures(args.repeat),
        "ttft_ms": ttft_figures(args.requests),
    }
    report(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
