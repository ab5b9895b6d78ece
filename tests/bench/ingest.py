"""Phases (a) and (b): sustained batch ingestion, with single-document POSTs probing latency."""

from __future__ import annotations

import re
import resource
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.indexing.chunking import chunk_text
from tests.bench.data import CorpusDoc
from tests.bench.metrics import latency_ms
from tests.bench.server import (
    ServerProcess,
    batched,
    finished,
    job_counts,
    log,
    post_with_retry,
    wait_all_settled,
)

PROBE_COLLECTION = "probe"  # probes stay out of the collection the retrieval phases search
CHUNK_TOKENS, OVERLAP_TOKENS = 512, 64  # the service defaults
# /readyz counts jobs with a GROUP BY on the registry thread (~10 ms at 100k jobs): poll gently.
POLL_S = 0.5


def replicate(
    corpus: list[CorpusDoc], target_chunks: int, realistic: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Copies of the corpus (distinct ids and text) until their chunks reach `target_chunks`.

    Plain copies repeat every rare word once per copy, so a rare term's posting list grows with
    the collection as no real corpus's does. With `realistic`, each copy after the first renames
    the words that occur in only one paragraph of the corpus (names, numbers, rare terms: the
    document-specific part of a vocabulary), so the vocabulary keeps growing and rare terms keep
    short posting lists, while common words repeat as they do in real text."""
    rename = _rare_words(corpus) if realistic else set()
    per_doc = [
        len(chunk_text(d.text + " (copy 999)", CHUNK_TOKENS, OVERLAP_TOKENS)) for d in corpus
    ]
    docs: list[dict[str, Any]] = []
    chunks, copy = 0, 0
    while chunks < target_chunks:
        for d, n in zip(corpus, per_doc, strict=True):
            if chunks >= target_chunks:
                break
            body = _renamed(d.text, rename, copy) if rename and copy else d.text
            docs.append(
                {"id": f"{d.doc_id}-r{copy}", "title": d.title, "text": f"{body} (copy {copy})"}
            )
            chunks += n
        copy += 1
    return docs, chunks


_WORD = re.compile(r"[^\W_]+")


def _rare_words(corpus: list[CorpusDoc]) -> set[str]:
    seen: Counter[str] = Counter()
    for d in corpus:
        seen.update({w.lower() for w in _WORD.findall(d.text)})
    return {w for w, n in seen.items() if n == 1}


def _renamed(text: str, rare: set[str], copy: int) -> str:
    tag = _letters(copy)  # letters, so that the analyser keeps the word whole
    return _WORD.sub(lambda m: m[0] + "q" + tag if m[0].lower() in rare else m[0], text)


def _letters(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 26)
        out = "abcdefghijklmnopqrstuvwxyz"[r] + out
        if n == 0:
            return out


@dataclass
class Prober:
    """One request every 1/rate s on one connection until stopped: a POST of a small new
    document, or (with `healthz`) GET /healthz, which touches neither registry nor store and so
    shows how long the event loop itself stalls."""

    url: str
    rate: float
    max_seconds: float
    healthz: bool = False
    samples: list[tuple[float, float]] = field(default_factory=list)  # (sent at, seconds)
    errors: int = 0
    accepted: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def latency(self, since: float = 0.0, until: float = float("inf")) -> dict[str, float]:
        return latency_ms([d for t, d in self.samples if since <= t < until])

    def _run(self) -> None:
        interval = 1.0 / self.rate
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.url, timeout=60, trust_env=False) as c:
            next_at = time.monotonic()
            for i in range(int(self.rate * self.max_seconds) + 1):
                if self._stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                if time.monotonic() > deadline:
                    return
                self._probe(c, i)
                next_at = max(next_at + interval, time.monotonic() - interval)

    def _request(self, c: httpx.Client, i: int) -> bool:
        if self.healthz:
            return c.get("/healthz").status_code == 200
        body = {
            "id": f"probe-{i}",
            "collection": PROBE_COLLECTION,
            "text": f"Probe note {i}: a short document posted while the pipeline is busy.",
        }
        return c.post("/v1/documents", json=body).status_code == 202

    def _probe(self, c: httpx.Client, i: int) -> None:
        started = time.perf_counter()
        try:
            ok = self._request(c, i)
        except httpx.HTTPError:
            ok = False
        if ok:
            self.samples.append((started, time.perf_counter() - started))
            self.accepted += 1
        else:
            self.errors += 1


class BatchSender:
    """Posts batches from a few threads, one connection each; records each batch's latency."""

    def __init__(self, url: str, connections: int) -> None:
        self.url, self.connections = url, connections
        self.latencies: list[float] = []
        self._local = threading.local()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = httpx.Client(
                base_url=self.url, timeout=300, trust_env=False
            )
        return client

    def _send(self, batch: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        post_with_retry(self._client(), "/v1/documents/batch", {"documents": batch}, max_wait=600)
        self.latencies.append(time.perf_counter() - started)

    def send_all(self, docs: list[dict[str, Any]], batch_size: int) -> float:
        """Posts every batch; returns the time when the last one was accepted."""
        with ThreadPoolExecutor(self.connections, thread_name_prefix="bench-batch") as pool:
            list(pool.map(self._send, [list(b) for b in batched(docs, batch_size)]))
        return time.perf_counter()


def _wait_batches_done(
    server: ServerProcess, n_docs: int, prober: Prober, sending: threading.Thread, timeout: float
) -> tuple[float, list[tuple[float, int]]]:
    """Poll /readyz until every batch job ended; returns that time and (t, finished) samples.

    Probes accepted before a poll are added to the goal, so reaching it proves every batch job
    ended (a probe accepted during the poll itself cannot have finished yet).
    """
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    with server.client() as c:
        while time.monotonic() < deadline:
            probes = prober.accepted
            done = finished(job_counts(c))
            now = time.perf_counter()
            samples.append((now, done))
            if not sending.is_alive() and done >= n_docs + probes:
                return now, samples
            time.sleep(POLL_S)
    raise TimeoutError(f"ingestion not finished within {timeout} s")


def _steady_rate(samples: list[tuple[float, int]], total: int) -> float | None:
    """Documents per second between 10 % and 90 % of the jobs finished."""
    lo = next((s for s in samples if s[1] >= 0.1 * total), None)
    hi = next((s for s in samples if s[1] >= 0.9 * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _probe_report(prober: Prober, posted_at: float) -> dict[str, Any]:
    return {
        "rate_per_s": prober.rate,
        "ok": prober.accepted,
        "errors": prober.errors,
        "latency_ms": prober.latency(),
        "while_batches_posted_ms": prober.latency(until=posted_at),
        "after_batches_posted_ms": prober.latency(since=posted_at),
    }


def run_ingestion(
    server: ServerProcess,
    docs: list[dict[str, Any]],
    *,
    batch_size: int,
    connections: int,
    probe_rate: float,
    timeout: float,
) -> dict[str, Any]:
    sender = BatchSender(server.url, connections)
    prober = Prober(server.url, probe_rate, max_seconds=timeout)
    health = Prober(server.url, probe_rate, max_seconds=timeout, healthz=True)
    cpu_before, client_before = server.cpu_seconds() or 0.0, _own_cpu_seconds()
    posted: list[float] = []
    sending = threading.Thread(
        target=lambda: posted.append(sender.send_all(docs, batch_size)), name="bench-sender"
    )
    started = time.perf_counter()
    for thread in (sending, prober, health):
        thread.start()
    try:
        done_at, samples = _wait_batches_done(server, len(docs), prober, sending, timeout)
    finally:
        prober.stop()
        health.stop()
        sending.join(timeout)
    cpu = (server.cpu_seconds() or 0.0) - cpu_before
    client_cpu = _own_cpu_seconds() - client_before
    with server.client() as c:
        counts = wait_all_settled(c, len(docs) + prober.accepted, timeout)
    seconds, posted_at = done_at - started, posted[0] if posted else done_at
    steady = _steady_rate(samples, len(docs))
    log(f"ingested {len(docs)} docs in {seconds:.1f} s; {prober.accepted} probes")
    return {
        "seconds": round(seconds, 2),
        "posting_seconds": round(posted_at - started, 2),
        "docs_per_s": round(len(docs) / seconds, 1),
        "steady_docs_per_s_10_to_90pct": round(steady, 1) if steady else None,
        "server_cpu_seconds": round(cpu, 1),
        "server_cpu_cores_used": round(cpu / seconds, 2),
        "bench_client_cpu_seconds": round(client_cpu, 1),
        "batch_post_latency_ms": latency_ms(sender.latencies),
        "probe_post_document": _probe_report(prober, posted_at),
        "probe_healthz": _probe_report(health, posted_at),
        "job_counts": counts,
    }
