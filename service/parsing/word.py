"""DOCX through python-docx: headings, paragraphs and tables, in reading order.

Headings are paragraphs styled `Title` or `Heading N` (or with an outline level); a table
becomes one line per row, its cells separated by ` | `.
"""

from __future__ import annotations

import io
import re
from typing import Any

from service.parsing.model import Limits, Parsed, ParseError, TextBuilder

_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título)\s*(\d)$", re.I)


def parse_docx(data: bytes, limits: Limits) -> Parsed:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors, ...
        raise ParseError(f"the DOCX file cannot be read: {type(exc).__name__}: {exc}") from None
    out = TextBuilder()
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            out.block(paragraph.text, _heading_level(paragraph))
        elif tag == "tbl":
            _table(out, Table(child, document))
        if out.size > limits.max_chars:
            raise ParseError(
                f"the DOCX file has more than {limits.max_chars} characters of text "
                "(CITELINE_MAX_DOCUMENT_CHARS)"
            )
    title = (document.core_properties.title or "").strip() or None
    return out.build(title or _first_title(out))


def _heading_level(paragraph: Any) -> int:
    style = paragraph.style.name if paragraph.style is not None else ""
    if style == "Title":
        return 1
    m = _HEADING_STYLE.match(style or "")
    return min(int(m.group(1)), 6) if m else 0


def _table(out: TextBuilder, table: Any) -> None:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        rows.append(" | ".join(cells))
    out.block("\n".join(r for r in rows if r.strip(" |")))


def _first_title(out: TextBuilder) -> str | None:
    return out.headings[0].title if out.headings else None
