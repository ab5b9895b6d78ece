"""A bounded load run: many concurrent clients mixing search, answers, streams and posts.

    python -m tests.bench.load [--data DIR] [--clients 200] [--seconds 60] [--quick] [--out F]

A real server (`python -m service`, extractive answers) on 127.0.0.1 indexes the corpus's
paragraphs, then `--clients` asyncio clients (aiohttp, one connection each) loop for
`--seconds`: 45 % POST /v1/search, 25 % POST /v1/query, 15 % streamed /v1/query (read to
`[DONE]`), 15 % POST /v1/documents. Reported per route: throughput, p50/p99 latency, statuses,
timeouts; for refusals (429/503) whether each had Retry-After and how fast it came. After the
load stops: a recovery probe (sequential searches and queries must all answer 200 again).
`--quick` is 50 clients for 10 s on 200 paragraphs, to prove the script.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench.data import load_dataset
from tests.bench.metrics import latency_ms
from tests.bench.server import log, post_with_retry, report, running_server, wait_all_settled

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad2-dev"
MIX = (("search", 45), ("query", 25), ("stream", 15), ("post", 15))
REQUEST_TIMEOUT_S = 10.0
TARGETS = {
    "timeouts": 0,
    "refusals_with_retry_after_ratio": 1.0,
    "refusal_p99_ms": 100.0,
    "recovered": True,
}


@dataclass
class Route:
    latencies: list[float] = field(default_factory=list)
    refusal_latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    refusals_without_retry_after: int = 0
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Load:
    def __init__(self, url: str, questions: list[str], seed: int = 7) -> None:
        self.url = url
        self.questions = questions
        self.routes = {name: Route() for name, _ in MIX}
        self.rng = random.Random(seed)
        self.posted = 0

    def pick(self) -> str:
        return self.rng.choices([n for n, _ in MIX], weights=[w for _, w in MIX])[0]

    async def one(self, session: aiohttp.ClientSession, kind: str) -> None:
        route = self.routes[kind]
        question = self.rng.choice(self.questions)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, retry_after = await self._send(session, kind, question)
        except TimeoutError:
            route.timeouts += 1
            return
        except aiohttp.ClientError as exc:
            route.errors[type(exc).__name__] += 1
            return
        took = time.perf_counter() - started
        route.statuses[str(status)] += 1
        if status in (429, 503):
            route.refusal_latencies.append(took)
            route.refusals_without_retry_after += retry_after is None
        elif status < 400:
            route.latencies.append(took)

    async def _send(
        self, session: aiohttp.ClientSession, kind: str, question: str
    ) -> tuple[int, str | None]:
        if kind == "search":
            body: dict[str, Any] = {"query": question, "max_results": 5}
            path = "/v1/search"
        elif kind == "post":
            self.posted += 1
            body = {"text": f"Load note {self.posted}: {question}", "collection": "load"}
            path = "/v1/documents"
        else:
            body = {"question": question, "stream": kind == "stream"}
            path = "/v1/query"
        async with session.post(self.url + path, json=body) as r:
            if kind == "stream" and r.status == 200:
                async for _ in r.content.iter_any():  # to the end of the stream
                    pass
            else:
                await r.read()
            return r.status, r.headers.get("Retry-After")

    async def client(self, session: aiohttp.ClientSession, until: float) -> None:
        while time.perf_counter() < until:
            await self.one(session, self.pick())

    async def run(self, clients: int, seconds: float) -> float:
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in range(clients)
        ]
        try:
            await asyncio.gather(*(self.client(s, until) for s in sessions))
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
        return time.perf_counter() - started

    def table(self, elapsed: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, r in self.routes.items():
            answered = sum(r.statuses.values())
            out[name] = {
                "throughput_rps": round(answered / elapsed, 1),
                "ok_latency_ms": latency_ms(r.latencies),
                "statuses": dict(r.statuses),
                "refusals": len(r.refusal_latencies),
                "refusal_latency_ms": latency_ms(r.refusal_latencies),
                "refusals_without_retry_after": r.refusals_without_retry_after,
                "timeouts": r.timeouts,
                "errors": dict(r.errors),
            }
        return out


async def recovery(url: str, questions: list[str]) -> dict[str, Any]:
    """After the load: sequential searches and queries must all answer 200 again."""
    await asyncio.sleep(2.0)  # let what the load left in flight finish (not synchronisation)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    async with aiohttp.ClientSession() as s:
        for q in questions[:20]:
            for path, body in (("/v1/search", {"query": q}), ("/v1/query", {"question": q})):
                started = time.perf_counter()
                async with s.post(url + path, json=body) as r:
                    await r.read()
                    statuses[r.status] += 1
                latencies.append(time.perf_counter() - started)
    return {"statuses": dict(statuses), "latency_ms": latency_ms(latencies),
            "recovered": set(statuses) == {200}}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--docs", type=int, default=0, help="paragraphs to index (0: all)")
    parser.add_argument("--quick", action="store_true", help="50 clients, 10 s, 200 paragraphs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.docs = 50, 10.0, 200
    started = time.perf_counter()
    dataset = load_dataset(args.data)
    corpus = dataset.corpus[: args.docs or None]
    questions = list(dataset.queries.values())
    with tempfile.TemporaryDirectory() as tmp, running_server(
        Path(tmp) / "data", {"CITELINE_ACCESS_LOG": "false"}
    ) as server:  # fmt: skip
        with server.client() as c:
            for i in range(0, len(corpus), 500):
                docs = [{"id": d.doc_id, "title": d.title, "text": d.text}
                        for d in corpus[i : i + 500]]  # fmt: skip
                post_with_retry(c, "/v1/documents/batch", {"documents": docs})
            wait_all_settled(c, len(corpus), timeout=600)
        log(f"indexed {len(corpus)} paragraphs; {args.clients} clients for {args.seconds:g} s")
        load = Load(server.url, questions)
        elapsed = asyncio.run(load.run(args.clients, args.seconds))
        table = load.table(elapsed)
        recovered = asyncio.run(recovery(server.url, questions))
    refusals = sum(r["refusals"] for r in table.values())
    missing = sum(r["refusals_without_retry_after"] for r in table.values())
    all_refusals = [x for r in load.routes.values() for x in r.refusal_latencies]
    summary = {
        "timeouts": sum(r["timeouts"] for r in table.values()),
        "refusals": refusals,
        "refusals_with_retry_after_ratio": round(1 - missing / refusals, 3) if refusals else None,
        "refusal_p99_ms": latency_ms(all_refusals).get("p99"),
        "recovered": recovered["recovered"],
    }
    return report(
        {
            "benchmark": "load",
            "method": "aiohttp clients, one connection each, no think time; extractive answers",
            "clients": args.clients,
            "seconds": round(elapsed, 1),
            "paragraphs": len(corpus),
            "routes": table,
            "after_load": recovered,
            "summary": summary,
            "targets": TARGETS,
        },
        args.out,
        started,
    )


if __name__ == "__main__":
    raise SystemExit(main())
