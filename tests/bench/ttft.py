"""Time to first token that citeline adds over calling the LLM (an OpenAI-compatible stub) directly.

    python -m tests.bench.ttft [--data DIR] [--quick] [--out FILE]

Both run on 127.0.0.1: the stub (`tests.stubs.openai_stub`, one word per stream chunk) and a
citeline server using it as its LLM. After indexing a few hundred paragraphs:

- baseline: a streaming chat completion sent straight to the stub, with a request body citeline
  itself sent during warm-up (same prompt, same size); TTFT = request start to the first
  non-empty `delta.content`.
- citeline: POST /v1/query {"stream": true}; TTFT = request start to the first `event: delta`
  (time to `event: sources` recorded too).

One client: baseline and citeline requests interleaved; the overhead is the per-pair difference.
50 concurrent streams: rounds of 50 simultaneous requests, citeline and baseline rounds apart;
the overhead there is p95(citeline) - p95(baseline), since concurrent requests do not pair.

Both kinds of request go through one lean HTTP/1.1 client (`tests.bench.stream_probe`): the
client shares the machine's cores with the stub and citeline, so it must cost little.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.bench.data import load_dataset
from tests.bench.metrics import latency_ms
from tests.bench.server import (
    ServerProcess,
    log,
    post_with_retry,
    report,
    running_server,
    wait_all_settled,
)
from tests.bench.stream_probe import ProbeError, StreamProbe
from tests.stubs.openai_stub import RemoteStub, spawn_stub

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad2-dev"
CHUNK_INTERVAL_S = 0.005
CONCURRENCY = 50
REQUEST_TIMEOUT_S = 60.0
METHOD = (
    "baseline = streamed chat completion straight to the stub with bodies citeline sent in"
    " warm-up; citeline = POST /v1/query stream=true to the first `event: delta`; one client:"
    " interleaved pairs, overhead = per-pair difference; 50 streams: rounds of 50 simultaneous"
    " requests (citeline and baseline rounds apart), overhead = p95(citeline) - p95(baseline);"
    " both through tests.bench.stream_probe (raw HTTP/1.1, keep-alive, marker search only)"
)
TARGETS = {
    "overhead_p50_ms_one_client": 15.0,
    "overhead_p95_ms_one_client": 30.0,
    "overhead_p95_ms_50_streams": 150.0,
    "errors": 0,
}


class StreamError(RuntimeError):
    pass


# A non-empty `delta.content` in a chat completion chunk (the first chunk may carry "").
_CONTENT = re.compile(rb'"content":\s*"[^"]')
_DONE = re.compile(rb"data: \[DONE\]")
_BASELINE = {"content": _CONTENT, "done": _DONE}
_CITELINE = {
    "sources": re.compile(rb"event: sources"),
    "delta": re.compile(rb"event: delta"),
    "error": re.compile(rb"event: error"),
    "done": _DONE,
}


async def baseline_ttft(stub: StreamProbe, body: bytes) -> float:
    """Seconds to the first non-empty content delta of a streamed chat completion."""
    seen = await stub.post("/chat/completions", body, _BASELINE, {"Authorization": "Bearer x"})
    if "content" not in seen or "done" not in seen:
        raise StreamError(f"stub stream incomplete: {sorted(seen)}")
    return seen["content"]


async def citeline_ttft(citeline: StreamProbe, question: str) -> tuple[float, float]:
    """Seconds to `event: sources` and to the first `event: delta` of a streamed /v1/query."""
    body = json.dumps({"question": question, "stream": True}).encode()
    seen = await citeline.post("/v1/query", body, _CITELINE)
    if "error" in seen:
        raise StreamError("citeline stream ended with an error event")
    if not {"sources", "delta", "done"} <= seen.keys():
        raise StreamError(f"citeline stream incomplete: {sorted(seen)}")
    return seen["sources"], seen["delta"]


def index_paragraphs(server: ServerProcess, docs: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    with server.client() as c:
        post_with_retry(c, "/v1/documents/batch", {"documents": docs})
        counts = wait_all_settled(c, len(docs), 600.0)
    if counts.get("failed"):
        raise RuntimeError(f"indexing failed: {counts}")
    return time.perf_counter() - started


async def warm_up(
    stub: RemoteStub, stub_probe: StreamProbe, citeline: StreamProbe, questions: list[str]
) -> tuple[list[bytes], list[int]]:
    """Warm-up through citeline; its requests to the stub become the baseline's bodies."""
    stub.reset()
    for q in questions[:30]:
        await citeline_ttft(citeline, q)
    sent = [r.body for r in stub.requests("/v1/chat/completions") if r.body]
    bodies = [json.dumps(b).encode() for b in sent]
    if not bodies:
        raise RuntimeError("citeline sent no chat request to the stub during warm-up")
    for body in bodies[:10]:
        await baseline_ttft(stub_probe, body)
    prompt_chars = [sum(len(str(m.get("content", ""))) for m in b["messages"]) for b in sent]
    return bodies, prompt_chars


async def one_client(
    stub: RemoteStub,
    stub_probe: StreamProbe,
    citeline: StreamProbe,
    questions: list[str],
    bodies: list[bytes],
    sequential: int,
) -> dict[str, Any]:
    """One client, interleaved pairs: the stub directly, then through citeline."""
    stub.reset()
    base_s: list[float] = []
    cite_s: list[float] = []
    src_s: list[float] = []
    diff_s: list[float] = []
    errors = 0
    for i in range(sequential):
        try:
            b = await baseline_ttft(stub_probe, bodies[i % len(bodies)])
            s, d = await citeline_ttft(citeline, questions[i % len(questions)])
        except (OSError, asyncio.IncompleteReadError, ProbeError, StreamError) as exc:
            errors += 1
            log(f"sequential request {i}: {exc!r}")
            continue
        base_s.append(b)
        cite_s.append(d)
        src_s.append(s)
        diff_s.append(d - b)
    # citeline's requests come from the openai SDK, the baseline's carry no user agent.
    llm_calls = sum(
        1
        for r in stub.requests("/v1/chat/completions")
        if "openai" in {k.lower(): v for k, v in r.headers.items()}.get("user-agent", "").lower()
    )
    return {
        "requests": sequential,
        "baseline_ttft_ms": latency_ms(base_s),
        "citeline_ttft_ms": latency_ms(cite_s),
        "citeline_time_to_sources_ms": latency_ms(src_s),
        "overhead_ms": latency_ms(diff_s),
        "errors": errors,
        "citeline_llm_calls": llm_calls,
    }


async def _gather(make: Callable[[int], Any]) -> tuple[list[Any], int]:
    results = await asyncio.gather(*(make(k) for k in range(CONCURRENCY)), return_exceptions=True)
    ok = [x for x in results if not isinstance(x, BaseException)]
    for x in results:
        if isinstance(x, BaseException):
            log(f"concurrent request failed: {x!r}")
    return ok, len(results) - len(ok)


async def concurrent(
    stub_probe: StreamProbe,
    citeline: StreamProbe,
    questions: list[str],
    bodies: list[bytes],
    rounds: int,
) -> dict[str, Any]:
    """CONCURRENCY streams at once, citeline rounds and baseline rounds apart."""
    conc_cite: list[float] = []
    conc_src: list[float] = []
    conc_base: list[float] = []
    cite_errors = base_errors = 0
    round_walls: list[float] = []
    for rnd in range(rounds):
        offset = rnd * CONCURRENCY

        def cite(k: int, o: int = offset) -> Awaitable[tuple[float, float]]:
            return citeline_ttft(citeline, questions[(o + k) % len(questions)])

        def base(k: int, o: int = offset) -> Awaitable[float]:
            return baseline_ttft(stub_probe, bodies[(o + k) % len(bodies)])

        t0 = time.perf_counter()
        ok, errs = await _gather(cite)
        round_walls.append(time.perf_counter() - t0)
        conc_src += [s for s, _ in ok]
        conc_cite += [d for _, d in ok]
        cite_errors += errs
        ok_b, errs_b = await _gather(base)
        conc_base += ok_b
        base_errors += errs_b
    cite95, base95 = latency_ms(conc_cite).get("p95"), latency_ms(conc_base).get("p95")
    return {
        "streams": CONCURRENCY,
        "rounds": rounds,
        "baseline_ttft_ms": latency_ms(conc_base),
        "citeline_ttft_ms": latency_ms(conc_cite),
        "citeline_time_to_sources_ms": latency_ms(conc_src),
        "overhead_p95_ms": None if cite95 is None or base95 is None else round(cite95 - base95, 3),
        "citeline_round_wall_s": [round(w, 3) for w in round_walls],
        "errors": cite_errors,
        "baseline_errors": base_errors,
    }


async def measure(
    stub: RemoteStub, server: ServerProcess, questions: list[str], sequential: int, rounds: int
) -> dict[str, Any]:
    stub_probe, citeline = StreamProbe(stub.base_url), StreamProbe(server.url)
    try:
        bodies, prompt_chars = await warm_up(stub, stub_probe, citeline, questions)
        one = await one_client(stub, stub_probe, citeline, questions, bodies, sequential)
        many = await concurrent(stub_probe, citeline, questions, bodies, rounds)
    finally:
        await stub_probe.aclose()
        await citeline.aclose()
    return {
        "one_client": one,
        "concurrent": many,
        "baseline_prompt_chars_mean": round(sum(prompt_chars) / len(prompt_chars)),
        "baseline_bodies": len(bodies),
    }


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    one, many = result["one_client"], result["concurrent"]
    measured = {
        "overhead_p50_ms_one_client": one["overhead_ms"].get("p50"),
        "overhead_p95_ms_one_client": one["overhead_ms"].get("p95"),
        "overhead_p95_ms_50_streams": many["overhead_p95_ms"],
        "errors": one["errors"] + many["errors"],
    }
    return {
        name: {
            "measured": value,
            "target": f"<= {TARGETS[name]}" if name != "errors" else "0",
            "met": value is not None and value <= TARGETS[name],
        }
        for name, value in measured.items()
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = load_dataset(args.data)
    n_docs = 100 if args.quick else 200
    sequential = 40 if args.quick else 200
    rounds = 2 if args.quick else 5
    corpus = data.corpus[:n_docs]
    indexed = {d.doc_id for d in corpus}
    # Questions answerable from the indexed paragraphs, so that every query reaches the LLM.
    questions = [
        text
        for qid, text in data.queries.items()
        if any(did in indexed for did in data.qrels.get(qid, {}))
    ]
    if not questions:
        raise RuntimeError("no query is judged against the indexed paragraphs")
    env = {}
    with spawn_stub("--chunk-interval", str(CHUNK_INTERVAL_S)) as stub:
        env = {
            "CITELINE_LLM_PROVIDER": "openai",
            "CITELINE_LLM_BASE_URL": stub.base_url,
            "CITELINE_LLM_MODEL": "stub-chat",
            "CITELINE_LLM_API_KEY": "x",
            "CITELINE_LLM_REWRITE_QUESTIONS": "false",
        }
        with (
            tempfile.TemporaryDirectory(prefix="citeline-ttft-") as tmp,
            running_server(Path(tmp) / "data", env) as server,
        ):
            docs = [{"id": d.doc_id, "title": d.title, "text": d.text} for d in corpus]
            index_s = index_paragraphs(server, docs)
            log(f"indexed {len(docs)} paragraphs in {index_s:.1f} s; measuring")
            measured = asyncio.run(measure(stub, server, questions, sequential, rounds))
    return {
        "dataset": data.name,
        "quick": args.quick,
        "docs_indexed": len(corpus),
        "questions_available": len(questions),
        "stub_chunk_interval_s": CHUNK_INTERVAL_S,
        "llm_env": {k: v for k, v in env.items() if k != "CITELINE_LLM_API_KEY"},
        "index_seconds": round(index_s, 2),
        **measured,
        "targets": verdict(measured),
        "method": METHOD,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR dataset folder")
    parser.add_argument("--quick", action="store_true", help="fewer docs and requests")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args)
    return report(result, args.out, started)


if __name__ == "__main__":
    sys.exit(main())
