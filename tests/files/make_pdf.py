"""Small PDFs written byte by byte, for tests: pages of positioned words, outlines, labels.

Words are drawn one `Tj` each at their own position, with no space characters between them,
as TeX and DocBook tool chains write justified text; a parser that reads only the characters
glues them together.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

Line = str  # one line of text; words are placed separately
Page = Sequence[Line]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(lines: Page, *, glued: bool, font_size: float = 11) -> bytes:
    out = ["BT", f"/F1 {font_size:g} Tf"]
    y = 760.0
    for line in lines:
        if glued and len(line) % 2:  # TeX's way: one TJ per line, kerns where spaces were
            words = " -333 ".join(f"({_escape(w)})" for w in line.split())
            out.append(f"1 0 0 1 72 {y:.2f} Tm [{words}] TJ")
        elif glued:  # DocBook/FOP's way: each word placed on its own
            x = 72.0
            for word in line.split():
                out.append(f"1 0 0 1 {x:.2f} {y:.2f} Tm ({_escape(word)}) Tj")
                # ~0.55 em a Helvetica character; 0.6 leaves room for wide ones (m, w).
                x += (len(word) * 0.6 + 0.3) * font_size
        else:
            out.append(f"1 0 0 1 72 {y:.2f} Tm ({_escape(line)}) Tj")
        y -= font_size * 1.4
    out.append("ET")
    return "\n".join(out).encode("latin-1")


def make_pdf(
    pages: Sequence[Page],
    *,
    glued: bool = False,
    title: str | None = None,
    outline: Sequence[tuple[str, int]] = (),
    labels: Sequence[tuple[int, str, int]] = (),
    compress: bool = True,
) -> bytes:
    """A PDF of `pages`; `outline`: (title, 0-based page) entries at one level; `labels`:
    (first page index, style "r"/"D", start number) ranges of /PageLabels."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids = []
    for lines in pages:
        raw = _content(lines, glued=glued)
        data = zlib.compress(raw) if compress else raw
        flt = b" /Filter /FlateDecode" if compress else b""
        stream = add(b"<< /Length %d%s >>\nstream\n" % (len(data), flt) + data + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, stream, font)
            )
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    extra = b""
    if outline:
        root = add(b"")
        items = [add(b"") for _ in outline]
        for i, ((text, page), oid) in enumerate(zip(outline, items, strict=True)):
            links = b""
            if i > 0:
                links += b" /Prev %d 0 R" % items[i - 1]
            if i + 1 < len(items):
                links += b" /Next %d 0 R" % items[i + 1]
            objects[oid - 1] = b"<< /Title (%s) /Parent %d 0 R /Dest [%d 0 R /XYZ 0 792 0]%s >>" % (
                _escape(text).encode("latin-1"),
                root,
                page_ids[page],
                links,
            )
        objects[root - 1] = b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (
            items[0],
            items[-1],
            len(items),
        )
        extra += b" /Outlines %d 0 R" % root
    if labels:
        nums = b" ".join(
            b"%d << /S /%s /St %d >>" % (first, style.encode(), start)
            for first, style, start in labels
        )
        extra += b" /PageLabels << /Nums [%s] >>" % nums
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R%s >>" % (pages_id, extra)
    info = add(b"<< /Title (%s) >>" % _escape(title).encode("latin-1")) if title else None

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root %d 0 R" % (len(objects) + 1, catalog)
    if info:
        trailer += b" /Info %d 0 R" % info
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
