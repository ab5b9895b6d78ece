"""Structure-aware chunks: headings start chunks, and each chunk knows its pages and section.

A document with headings is cut at each of them and every section is chunked on its own (so
no chunk straddles two sections); a heading followed at once by another (`5. Basics` then
`5.1 Intro`) is kept with it rather than becoming a chunk of its own. A chunk's `section` is
its heading path (`5. Basics › 5.6 debian/rules`); its `page` is the 1-based physical page
(slide) its text starts on, `page_end` the last one when it spans pages.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.indexing.chunking import Chunk, chunk_text
from service.utf16 import utf16_len

PATH_SEPARATOR = " › "
MAX_SECTION_CHARS = 500


@dataclass(frozen=True, slots=True)
class Layout:
    """Page starts (offsets of pages 1, 2, ...), their printed labels, and headings."""

    page_starts: Sequence[int] = ()
    page_labels: Sequence[str] = ()
    headings: Sequence[tuple[int, int, str]] = field(default_factory=tuple)  # offset, level


def chunk_document(text: str, layout: Layout, max_tokens: int, overlap_tokens: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for start, end, path in _sections(text, layout.headings):
        for c in chunk_text(text[start:end], max_tokens, overlap_tokens):
            chunks.append(
                dataclasses.replace(
                    c, index=len(chunks), start=c.start + start, end=c.end + start,
                    section=path or None,
                )
            )  # fmt: skip
    if layout.page_starts:
        chunks = [_paged(c, layout) for c in chunks]
    return with_utf16(text, chunks)


def with_utf16(text: str, chunks: list[Chunk]) -> list[Chunk]:
    """`chunks` with their spans also counted in UTF-16 code units, in one pass over `text`."""
    offsets: dict[int, int] = {}
    done_at, units = 0, 0
    for at in sorted({p for c in chunks for p in (c.start, c.end)}):
        units += utf16_len(text[done_at:at])
        offsets[at], done_at = units, at
    return [
        dataclasses.replace(c, start_utf16=offsets[c.start], end_utf16=offsets[c.end])
        for c in chunks
    ]


def _paged(chunk: Chunk, layout: Layout) -> Chunk:
    starts = layout.page_starts
    first = max(1, bisect_right(starts, chunk.start))
    last = max(first, bisect_right(starts, chunk.end - 1))
    labels = layout.page_labels
    label = labels[first - 1] if len(labels) >= first else None
    return dataclasses.replace(
        chunk, page=first, page_end=last if last != first else None, page_label=label
    )


def _sections(text: str, headings: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """(start, end, heading path) of each section, in order, covering the whole text."""
    marks = sorted((o, lvl, t) for o, lvl, t in headings if 0 <= o < len(text))
    if not marks:
        return [(0, len(text), "")]
    sections: list[tuple[int, int, str]] = []
    if text[: marks[0][0]].strip():
        sections.append((0, marks[0][0], ""))
    stack: list[tuple[int, str]] = []
    cut = marks[0][0]
    for i, (offset, level, title) in enumerate(marks):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, " ".join(title.split())[:200]))
        nxt = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        line_end = text.find("\n", offset, nxt)
        body = text[line_end:nxt] if line_end >= 0 else ""
        if i + 1 < len(marks) and not body.strip():
            continue  # only a heading: it stays with the next one
        path = PATH_SEPARATOR.join(t for _, t in stack)
        sections.append((cut, nxt, path[-MAX_SECTION_CHARS:]))
        cut = nxt
    return sections
