"""What the commands print: a progress bar (or, when stderr is not a terminal, one JSON line
per update), streamed answers with footnotes, passages and documents."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from service.cli.errors import CliError
from service.cli.ingest import Report

QUOTE_CHARS = 160
_SHOWN = ("documents_done", "documents_total", "chunks", "failed", "skipped")


class IngestProgress:
    """A rich progress bar on a terminal; elsewhere (CI, a pipe) a JSON line on stderr each
    time the counts change: {"event": "progress", "documents_done", "documents_total",
    "chunks", "failed", "skipped", "rate_per_s", "eta_s"}."""

    def __init__(self) -> None:
        self.err = Console(stderr=True)
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last: tuple[Any, ...] | None = None

    def __enter__(self) -> IngestProgress:
        if self.err.is_terminal:
            self.bar = Progress(
                TextColumn("indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[chunks]} chunks, {task.fields[failed]} failed"),
                TextColumn("{task.fields[rate]:.1f} docs/s"),
                TimeRemainingColumn(),
                console=self.err,
            )
            self.bar.start()
            self.task = self.bar.add_task("indexing", total=None, chunks=0, failed=0, rate=0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, report: Report) -> None:
        line = report.progress()
        if self.bar is not None and self.task is not None:
            self.bar.update(
                self.task,
                total=line["documents_total"],
                completed=line["documents_done"],
                chunks=line["chunks"],
                failed=line["failed"],
                rate=line["rate_per_s"],
            )
            return
        key = tuple(line[k] for k in _SHOWN)
        if key != self.last:
            self.last = key
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()


def print_ingest(report: Report) -> None:
    summary = report.summary()
    lines = [
        f"indexed {len(report.indexed)}, skipped {len(report.skipped)} unchanged, "
        f"failed {len(report.failures)}; {report.chunks} chunks in {summary['seconds']}s",
        *(f"  failed: {path}: {error}" for path, error in report.failures),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def stream_answer(events: Iterator[tuple[str, Any]]) -> tuple[list[dict[str, Any]], set[int]]:
    """Write the answer's text as it arrives; the sources and the numbers it cites."""
    sources: list[dict[str, Any]] = []
    cited: set[int] = set()
    for name, data in events:
        if name == "sources":
            sources = data["sources"]
        elif name == "delta":
            sys.stdout.write(data["text"])
            sys.stdout.flush()
        elif name == "citations":
            cited = set(data["cited"])
        elif name == "error":
            sys.stdout.write("\n")
            raise CliError(f"the answer failed: {data['message']}", data.get("status"))
    sys.stdout.write("\n")
    return sources, cited


def quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1].rstrip() + "…"


def _where(source: dict[str, Any]) -> str:
    title = source.get("title") or source.get("source") or source["document_id"]
    page = source.get("page")
    return f"{title}, p. {page}" if page is not None else str(title)


def print_footnotes(sources: list[dict[str, Any]], cited: set[int]) -> None:
    """`[n] Title, p. 3 — "a short quote"` for each source the answer cites."""
    shown = [s for s in sources if s["n"] in cited]
    if not shown:
        return
    lines = [f"[{s['n']}] {_where(s)} — \u201c{quote(s['text'])}\u201d" for s in shown]
    sys.stdout.write("\n" + "\n".join(lines) + "\n")


def print_passages(results: list[dict[str, Any]]) -> None:
    lines = [
        f"{i}. {_where(r)} ({r['document_id']}, {r['start']}-{r['end']}, score {r['score']:.3f})"
        f"\n   {quote(r['text'])}"
        for i, r in enumerate(results, 1)
    ]
    sys.stdout.write(("\n".join(lines) or "no passages found") + "\n")


def print_documents(documents: list[dict[str, Any]]) -> None:
    table = Table("document_id", "title", "file", "chunks", "state", box=None)
    for d in documents:
        table.add_row(
            d["document_id"], d.get("title") or "", d.get("filename") or "", str(d["chunks"]),
            d["state"],
        )  # fmt: skip
    Console(highlight=False).print(table)
