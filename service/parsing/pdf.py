"""PDF through PDFium (pypdfium2); pypdf for printed page labels, and as the fallback reader.

PDFium places generated spaces and line breaks from glyph positions, so text layers that carry
no space characters (TeX, DocBook/FOP output) keep their word boundaries; pypdf's extraction
glues such words, which is why it is only the fallback for files PDFium cannot open. A hyphen
PDFium removed at a line end is marked U+FFFE (or U+0002): the word is joined back.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

from service.parsing.model import Heading, Limits, Parsed, ParseError

_REMOVED_HYPHEN = str.maketrans({"\ufffe": None, "\x02": None, "\x00": None})
# A line break inside a sentence (the line ends without punctuation and the next starts in
# lower case) is the page's layout, not the text's: it becomes a space, so sentences stay whole.
_SOFT_BREAK = re.compile(r"(?<=[^\s.!?:;])[ \t]*\n[ \t]*(?=[a-z(])")


def parse_pdf(data: bytes, limits: Limits) -> Parsed:
    try:
        return _pdfium(data, limits)
    except ParseError:
        raise
    except Exception as pdfium_error:  # PDFium reports every failure as PdfiumError or OSError
        try:
            return _pypdf(data, limits)
        except ParseError:
            raise
        except Exception:
            reason = str(pdfium_error).removeprefix("Failed to load document ").strip(" .")
            raise ParseError(f"the PDF cannot be read {reason}".strip()) from None


def _check_pages(n: int, limits: Limits) -> None:
    if n > limits.max_pages:
        raise ParseError(
            f"the PDF has {n} pages; the limit is {limits.max_pages} (CITELINE_MAX_FILE_PAGES)"
        )
    if n == 0:
        raise ParseError("the PDF has no pages")


def _assemble(pages: Iterable[str], limits: Limits) -> tuple[str, list[int], list[int]]:
    parts: list[str] = []
    starts: list[int] = []
    empty: list[int] = []
    size = 0
    for number, raw in enumerate(pages, start=1):
        text = raw.translate(_REMOVED_HYPHEN).replace("\r\n", "\n").replace("\r", "\n").strip()
        text = _SOFT_BREAK.sub(" ", text)
        sep = 2 if size and text else 0
        starts.append(size + sep if text else size)
        if not text:
            empty.append(number)
            continue
        if sep:
            parts.append("\n\n")
        parts.append(text)
        size += sep + len(text)
        if size > limits.max_chars:
            raise ParseError(
                f"the PDF has more than {limits.max_chars} characters of text "
                "(CITELINE_MAX_DOCUMENT_CHARS)"
            )
    return "".join(parts), starts, empty


def _pdfium(data: bytes, limits: Limits) -> Parsed:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        _check_pages(len(pdf), limits)

        def texts() -> Iterable[str]:
            for i in range(len(pdf)):
                page = pdf[i]
                textpage = page.get_textpage()
                try:
                    yield textpage.get_text_range()
                finally:
                    textpage.close()
                    page.close()

        text, starts, empty = _assemble(texts(), limits)
        toc = [
            (item.level, item.get_title(), dest.get_index())
            for item in pdf.get_toc(max_depth=6)
            if (dest := item.get_dest()) is not None and dest.get_index() is not None
        ]
        title = (pdf.get_metadata_dict().get("Title") or "").strip() or None
    finally:
        pdf.close()
    parsed = Parsed(text, title, starts, pages_without_text=empty)
    parsed.headings = _outline_headings(text, starts, toc)
    parsed.page_labels = _labels(data, len(starts))
    return parsed


def _pypdf(data: bytes, limits: Limits) -> Parsed:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise ParseError("the PDF is encrypted with a password")
    _check_pages(len(reader.pages), limits)
    text, starts, empty = _assemble((p.extract_text() or "" for p in reader.pages), limits)
    title = reader.metadata.title if reader.metadata else None
    return Parsed(
        text, (title or "").strip() or None, starts, _labels(data, len(starts)), [], empty
    )


def _labels(data: bytes, n: int) -> list[str]:
    """Printed page labels (`iv`, `A-3`), only where the file defines them and they differ from
    the physical numbers."""
    if b"/PageLabels" not in data and b"/ObjStm" not in data:
        return []
    try:
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        if "/PageLabels" not in reader.root_object:
            return []
        labels = list(reader.page_labels)
    except Exception:  # labels are a nicety: a file pypdf cannot read still parses
        return []
    if len(labels) != n or labels == [str(i + 1) for i in range(n)]:
        return []
    return [label[:32] for label in labels]


def _outline_headings(
    text: str, starts: list[int], toc: list[tuple[int, str, int]]
) -> list[Heading]:
    """Outline entries placed where their title is printed on their page (else its top)."""
    headings: list[Heading] = []
    for level, title, index in toc:
        title = " ".join(title.split())
        if not title or not 0 <= index < len(starts):
            continue
        lo = starts[index]
        hi = starts[index + 1] if index + 1 < len(starts) else len(text)
        words = [re.escape(w) for w in title.split()[:12]]
        pattern = r"\s+".join(words)
        page = text[lo:hi]
        found = re.search(r"(?im)^[\w.]{0,12}\s*" + pattern, page) or re.search(pattern, page, re.I)
        headings.append(Heading(lo + (found.start() if found else 0), level + 1, title[:300]))
    headings.sort(key=lambda h: h.offset)
    return headings
