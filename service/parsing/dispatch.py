"""One entry point from bytes and a detected format to a `Parsed`."""

from __future__ import annotations

from service.parsing.model import Format, Limits, Parsed, ParseError


def parse(data: bytes, fmt: Format, limits: Limits) -> Parsed:
    if fmt == "pdf":
        from service.parsing.pdf import parse_pdf

        return parse_pdf(data, limits)
    if fmt == "docx":
        from service.parsing.word import parse_docx

        return parse_docx(data, limits)
    if fmt == "pptx":
        from service.parsing.slides import parse_pptx

        return parse_pptx(data, limits)
    if fmt == "html":
        from service.parsing.web import parse_html

        return parse_html(data, limits)
    from service.parsing.text import parse_markdown, parse_text

    parsed = parse_markdown(data) if fmt == "markdown" else parse_text(data)
    if len(parsed.text) > limits.max_chars:
        raise ParseError(
            f"the text has {len(parsed.text)} characters; the limit is {limits.max_chars} "
            "(CITELINE_MAX_DOCUMENT_CHARS)"
        )
    return parsed
