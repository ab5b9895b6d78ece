"""Files: PDF parse speed, upload-to-searchable time, parser memory, a batch of small files.

    python -m tests.bench.files [--pdf PATH] [--files 1000] [--quick] [--out FILE]

Prints one JSON object on stdout (progress on stderr), each figure beside its target:
  - pdf_parse: the PDF parsed by the parser pool as the service runs it (a child process,
    JSON back over a pipe), `--repeat` times after one warm-up: pages/s (target >= 50 on two
    cores, on a 100+ page real PDF), and the parser process's peak RSS;
  - upload_to_searchable: a live server (subprocess, embedded store, BM25): the PDF POSTed as
    multipart, then the clock runs until a sentence of its middle page is found by /v1/search
    (the job completed and its chunks served); the server's parser process peak RSS (VmHWM);
  - small_files_batch: `--files` small files (Markdown, HTML, text and one-page PDFs, a
    quarter each) POSTed as multipart batches of at most 1,000, then GET /v1/batches/{id}
    polled every 0.2 s until all completed: files/s end to end, and the poll's latency.
Without --pdf (or when the file is missing) the PDF figures are skipped, saying why. A
benchmark, not a test: it exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from service.parsing.model import Limits
from service.parsing.process import ParserPool
from tests.bench.metrics import latency_ms
from tests.bench.server import log, report, running_server
from tests.bench.targets import _target
from tests.files.make_pdf import make_pdf

MAX_BATCH = 1000


def parse_figures(pdf: Path, repeat: int) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        pool = ParserPool(1, 600, 2048, Limits(max_pages=100_000, max_chars=50_000_000))
        try:
            parsed = await pool.parse(pdf, "pdf")  # warm-up: starts the process
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                parsed = await pool.parse(pdf, "pdf")
                times.append(time.perf_counter() - started)
        finally:
            await pool.close()
        pages = len(parsed.page_starts)
        best, median = min(times), statistics.median(times)
        return {
            "pages": pages,
            "chars": len(parsed.text),
            "headings": len(parsed.headings),
            "pages_without_text": len(parsed.pages_without_text),
            "seconds_median": round(median, 3),
            "pages_per_s_median": round(pages / median, 1),
            "pages_per_s_best": round(pages / best, 1),
            "parser_peak_rss_mib": round(pool.max_rss_kib / 1024, 1),
        }

    return asyncio.run(run())


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_children(kid)]
    return found


def parser_peak_mib(server_pid: int) -> float | None:
    peaks = []
    for pid in _children(server_pid):
        try:
            if b"service.parsing.child" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return round(max(peaks), 1) if peaks else None


def _probe_sentence(pdf: Path) -> str:
    """A few words from the middle page, to search for."""

    async def run() -> str:
        pool = ParserPool(1, 600, 2048, Limits(max_pages=100_000, max_chars=50_000_000))
        try:
            parsed = await pool.parse(pdf, "pdf")
        finally:
            await pool.close()
        starts = parsed.page_starts
        middle = len(starts) // 2
        page = parsed.text[
            starts[middle] : starts[middle + 1] if middle + 1 < len(starts) else None
        ]
        lines = sorted((ln for ln in page.splitlines() if len(ln.split()) >= 8), key=len)
        return " ".join((lines[len(lines) // 2] if lines else page).split()[:10])

    return asyncio.run(run())


def upload_figures(server: Any, pdf: Path) -> dict[str, Any]:
    probe = _probe_sentence(pdf)
    with server.client() as c:
        started = time.perf_counter()
        r = c.post("/v1/documents", files={"file": (pdf.name, pdf.read_bytes())})
        accepted_s = time.perf_counter() - started
        if r.status_code != 202:
            return {"error": r.text}
        document_id = r.json()["document_id"]
        while True:
            job = c.get(f"/v1/jobs/{r.json()['job_id']}").json()
            if job["status"] == "failed":
                return {"error": job["error"]}
            if job["status"] == "completed":
                hits = c.post("/v1/search", json={"query": probe, "max_results": 10}).json()
                if any(h["document_id"] == document_id for h in hits["results"]):
                    break
            time.sleep(0.02)
        searchable_s = time.perf_counter() - started
    return {
        "accept_ms": round(accepted_s * 1000, 1),
        "upload_to_searchable_s": round(searchable_s, 2),
        "pages": job["pages"],
        "chunks": job["chunks_total"],
        "probe": probe,
        "server_parser_peak_rss_mib": parser_peak_mib(server.pid),
    }


def small_files(n: int) -> list[tuple[str, bytes]]:
    files = []
    for i in range(n):
        words = f"note {i} about granite basalt obsidian and pumice number {i * 7}"
        kind = i % 4
        if kind == 0:
            files.append((f"n{i}.md", f"# Note {i}\n\n{words}.\n".encode()))
        elif kind == 1:
            files.append(
                (f"n{i}.html", f"<html><title>N{i}</title><p>{words}.</p></html>".encode())
            )
        elif kind == 2:
            files.append((f"n{i}.txt", f"{words}.\n".encode()))
        else:
            files.append((f"n{i}.pdf", make_pdf([[f"Note {i}", words]])))
    return files


def batch_figures(server: Any, n: int) -> dict[str, Any]:
    files = small_files(n)
    polls: list[float] = []
    with server.client(timeout=600) as c:
        started = time.perf_counter()
        ids = []
        for at in range(0, n, MAX_BATCH):
            part = [("file", f) for f in files[at : at + MAX_BATCH]]
            r = c.post("/v1/documents/batch", files=part)
            if r.status_code != 202:
                return {"error": r.text}
            ids.append(r.json()["batch_id"])
        posted_s = time.perf_counter() - started
        pending, counts = set(ids), {}
        while pending:
            for batch_id in list(pending):
                t = time.perf_counter()
                body = c.get(f"/v1/batches/{batch_id}").json()
                polls.append(time.perf_counter() - t)
                if body["status"] != "in_progress":
                    pending.discard(batch_id)
                    counts[batch_id] = body["counts"]
            if pending:
                time.sleep(0.2)
        seconds = time.perf_counter() - started
    total = {k: sum(c[k] for c in counts.values()) for k in ("total", "completed", "failed")}
    return {
        "files": n,
        "post_seconds": round(posted_s, 2),
        "end_to_end_seconds": round(seconds, 2),
        "files_per_s": round(n / seconds, 1),
        "counts": total,
        "batch_poll_latency_ms": latency_ms(polls),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"pdf": str(args.pdf) if args.pdf else None}
    pdf = args.pdf if args.pdf and args.pdf.is_file() else None
    if pdf is None:
        result["pdf_skipped"] = "no --pdf given, or the file is missing (make bench PDF=...)"
    else:
        log(f"parsing {pdf} ({args.repeat}x)")
        result["pdf_parse"] = parse_figures(pdf, args.repeat)
    n = 100 if args.quick else args.files
    with tempfile.TemporaryDirectory(prefix="citeline-files-bench-") as tmp, running_server(
        Path(tmp) / "data"
    ) as server:  # fmt: skip
        if pdf is not None:
            log("upload to searchable")
            result["upload"] = upload_figures(server, pdf)
        log(f"a batch of {n} small files")
        result["small_files_batch"] = batch_figures(server, n)
    parse = result.get("pdf_parse", {})
    result["targets"] = [
        _target("PDF parse (2 cores)", parse.get("pages_per_s_median"), ">=", 50, "pages/s"),
    ]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdf", type=Path, help="a 100+ page real PDF (kept outside the repo)")
    parser.add_argument("--files", type=int, default=1000, help="small files in the batch run")
    parser.add_argument("--repeat", type=int, default=3, help="timed parses of the PDF")
    parser.add_argument("--quick", action="store_true", help="100 small files")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    return report(run(args), args.out, started)


if __name__ == "__main__":
    sys.exit(main())
