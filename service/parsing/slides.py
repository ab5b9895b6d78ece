"""PPTX through python-pptx: one slide is one page; its title heads it, its notes follow it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from service.parsing.model import Limits, Parsed, ParseError, TextBuilder


def parse_pptx(data: bytes, limits: Limits) -> Parsed:
    import pptx

    try:
        deck = pptx.Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except Exception as exc:  # python-pptx raises KeyError, ValueError, lxml errors, ...
        raise ParseError(f"the PPTX file cannot be read: {type(exc).__name__}: {exc}") from None
    if len(slides) > limits.max_pages:
        raise ParseError(
            f"the presentation has {len(slides)} slides; the limit is {limits.max_pages} "
            "(CITELINE_MAX_FILE_PAGES)"
        )
    out = TextBuilder()
    empty: list[int] = []
    for number, slide in enumerate(slides, start=1):
        out.page()
        before = out.size
        title_shape = slide.shapes.title
        if title_shape is not None and title_shape.text_frame.text.strip():
            out.block(title_shape.text_frame.text, 1)
        for shape in _shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            for text in _texts(shape):
                out.block(text)
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                out.block("Notes: " + notes.text)
        if out.size == before:
            empty.append(number)
        if out.size > limits.max_chars:
            raise ParseError(
                f"the presentation has more than {limits.max_chars} characters of text "
                "(CITELINE_MAX_DOCUMENT_CHARS)"
            )
    title = (deck.core_properties.title or "").strip() or None
    parsed = out.build(title or (out.headings[0].title if out.headings else None))
    parsed.pages_without_text = empty
    return parsed


def _shapes(shapes: Any) -> Iterator[Any]:
    """Every shape, group members in place, top to bottom then left to right."""

    def position(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if shape.shape_type == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _texts(shape: Any) -> Iterator[str]:
    if shape.has_text_frame:
        yield shape.text_frame.text
    elif getattr(shape, "has_table", False) and shape.has_table:
        rows = [" | ".join(" ".join(c.text.split()) for c in row.cells) for row in shape.table.rows]
        yield "\n".join(rows)
