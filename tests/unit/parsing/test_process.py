"""The parser pool: real child processes, killed or failed alone, the pool going on."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import zipfile
from pathlib import Path

import pytest

from service.parsing.model import Limits, ParseError
from service.parsing.process import ParserPool
from tests.files.make_pdf import make_pdf
from tests.files.samples import docx_sample, pdf_sample


def parser_pids() -> list[int]:
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"service.parsing.child" in cmdline:
                found.append(int(pid))
    return found


@pytest.fixture
async def pool() -> ParserPool:
    made = ParserPool(1, 30, 400, Limits(max_uncompressed_bytes=10**10))
    yield made  # type: ignore[misc]
    await made.close()
    assert parser_pids() == []  # close leaves no process behind


async def test_a_file_parses_and_the_process_is_kept(pool: ParserPool, tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(pdf_sample())
    first = await pool.parse(tmp_path / "a.pdf", "pdf")
    pids = parser_pids()
    again = await pool.parse(tmp_path / "a.pdf", "pdf")
    assert first.text == again.text and "Basalt columns" in first.text
    assert len(pids) == 1 and parser_pids() == pids
    assert pool.max_rss_kib > 10_000


async def test_a_file_that_needs_more_memory_than_the_cap_fails_alone(
    pool: ParserPool, tmp_path: Path
) -> None:
    """document.xml unpacks to 600 MB: over the process's 400 MiB address space."""
    out = io.BytesIO(docx_sample())
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(tmp_path / "big.docx", "w") as dst:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                dst.writestr(item, src.read(item))
        with dst.open(zipfile.ZipInfo("word/document.xml"), "w", force_zip64=True) as f:
            for _ in range(600):
                f.write(b" " * (1 << 20))
    with pytest.raises(ParseError, match=r"ran out of memory \(limit 400 MiB\)"):
        await pool.parse(tmp_path / "big.docx", "docx")
    (tmp_path / "fine.docx").write_bytes(docx_sample())
    assert "Granary" in (await pool.parse(tmp_path / "fine.docx", "docx")).text


async def test_a_parser_that_crashes_fails_its_file_only(pool: ParserPool, tmp_path: Path) -> None:
    pages = [[f"line {i} of page {p} with words" for i in range(50)] for p in range(1200)]
    (tmp_path / "long.pdf").write_bytes(make_pdf(pages))
    (tmp_path / "a.pdf").write_bytes(pdf_sample())
    await pool.parse(tmp_path / "a.pdf", "pdf")  # the process is up
    (pid,) = parser_pids()
    parsing = asyncio.create_task(pool.parse(tmp_path / "long.pdf", "pdf"))
    await asyncio.sleep(0)  # the request goes out (or is about to: it fails the same way)
    os.kill(pid, signal.SIGSTOP)  # it cannot finish the file first, however fast it is
    os.kill(pid, signal.SIGSEGV)  # as PDFium aborting on a malformed file
    os.kill(pid, signal.SIGCONT)
    with pytest.raises(ParseError, match=r"died \(SIGSEGV\)"):
        await parsing
    assert "Basalt" in (await pool.parse(tmp_path / "a.pdf", "pdf")).text
    assert parser_pids() != [pid]


async def test_a_cancelled_parse_kills_its_process(pool: ParserPool, tmp_path: Path) -> None:
    pages = [[f"line {i} of page {p} with words" for i in range(50)] for p in range(1200)]
    (tmp_path / "long.pdf").write_bytes(make_pdf(pages))
    parsing = asyncio.create_task(pool.parse(tmp_path / "long.pdf", "pdf"))
    async with asyncio.timeout(60):
        while not (pids := parser_pids()):  # its process is starting
            await asyncio.sleep(0.01)
    # Stopped, starting or parsing, it cannot finish the file before the cancel arrives.
    os.kill(pids[0], signal.SIGSTOP)
    parsing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parsing
    assert parser_pids() == []
