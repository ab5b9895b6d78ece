"""Which format a file is, decided by its bytes; the cheap checks an upload gets at once.

The content decides, not the name: a PDF named `notes.txt` is a PDF, and an executable named
`report.pdf` is refused. Only between the text formats, which no byte tells apart, does the
name (or the declared media type) choose Markdown over plain text.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from service.parsing.model import Format, Limits

SUPPORTED = "PDF, DOCX, PPTX, HTML, Markdown and plain text (UTF-8, UTF-16 with BOM, Latin-1)"

_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body|meta|title)\b", re.I | re.S
)
_MARKDOWN_NAMES = (".md", ".markdown", ".mdown", ".mkd")
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc / .ppt / .xls
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


class Unsupported(Exception):
    """Not a format citeline reads; the message names what it does read."""


class TooLarge(Exception):
    """Over a limit that the upload itself shows (uncompressed size, slide count)."""


@dataclass(frozen=True, slots=True)
class Detected:
    format: Format
    slides: int | None = None  # PPTX: counted from the archive listing


def detect(data: bytes, filename: str | None, declared: str | None, limits: Limits) -> Detected:
    """The file's format, or `Unsupported`/`TooLarge`; reads only headers and zip listings."""
    head = data[:1024]
    if b"%PDF-" in head:
        return Detected("pdf")
    if data.startswith(b"PK\x03\x04"):
        return _office(data, limits)
    if data.startswith(_OLE):
        raise Unsupported(
            "legacy Office files (.doc, .ppt) are not supported; save as DOCX or PPTX. "
            f"Supported: {SUPPORTED}"
        )
    if not _is_text(head):
        raise Unsupported(
            f"the file is neither text nor a supported document format. Supported: {SUPPORTED}"
        )
    body = head
    for bom in _BOMS:
        if body.startswith(bom):
            body = body[len(bom) :]
            break
    if body[:1] == b"\x00" or body[1:2] == b"\x00":  # UTF-16 text: look at its ASCII letters
        body = body.replace(b"\x00", b"")
    if _HTML_START.match(body) or (declared or "").startswith(("text/html", "application/xhtml")):
        return Detected("html")
    name = (filename or "").lower()
    if name.endswith(_MARKDOWN_NAMES) or (declared or "").startswith("text/markdown"):
        return Detected("markdown")
    if name.endswith((".html", ".htm", ".xhtml")):
        return Detected("html")
    return Detected("text")


def _is_text(head: bytes) -> bool:
    """Text has no NUL bytes (UTF-16 has them, and a BOM), and few control characters."""
    if head.startswith(_BOMS[1:]):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls <= len(head) // 100


def _office(data: bytes, limits: Limits) -> Detected:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise Unsupported(
            f"the file looks like a zip archive but cannot be read ({exc}). Supported: {SUPPORTED}"
        ) from None
    names = {i.filename for i in infos}
    if "word/document.xml" in names:
        fmt: Format = "docx"
    elif "ppt/presentation.xml" in names:
        fmt = "pptx"
    else:
        raise Unsupported(f"a zip archive that is neither DOCX nor PPTX. Supported: {SUPPORTED}")
    if len(infos) > 100_000:
        raise TooLarge(f"the {fmt.upper()} archive has {len(infos)} entries")
    total = sum(i.file_size for i in infos)
    if total > limits.max_uncompressed_bytes:
        raise TooLarge(
            f"the {fmt.upper()} file unpacks to {total} bytes; the limit is "
            f"{limits.max_uncompressed_bytes} (CITELINE_MAX_FILE_UNCOMPRESSED_BYTES)"
        )
    slides = None
    if fmt == "pptx":
        slides = sum(1 for n in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n))
        if slides > limits.max_pages:
            raise TooLarge(
                f"the presentation has {slides} slides; the limit is {limits.max_pages} "
                "(CITELINE_MAX_FILE_PAGES)"
            )
    return Detected(fmt, slides)
