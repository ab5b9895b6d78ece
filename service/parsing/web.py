"""HTML through selectolax (lexbor): the main text, headings marked; `<title>` is the title.

Scripts, styles, navigation, headers, footers and forms are dropped. Where the page marks its
main content (`<main>`, `<article>`, `role=main`) only that is read.
"""

from __future__ import annotations

import re

from service.parsing.model import Limits, Parsed, ParseError, TextBuilder
from service.parsing.text import decode

_DROP = "script, style, noscript, template, nav, header, footer, aside, form, svg, iframe, head"
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "main", "li", "dt", "dd", "blockquote", "pre",
        "table", "tr", "ul", "ol", "dl", "figure", "figcaption", "address", "details",
        "summary", "caption", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr",
    }
)  # fmt: skip
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.I)


def _decode(data: bytes) -> str:
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        m = _META_CHARSET.search(data[:4096])
        if m:
            try:
                return data.decode(m.group(1).decode("ascii"), errors="replace")
            except LookupError:
                pass
    return decode(data)


def parse_html(data: bytes, limits: Limits) -> Parsed:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_decode(data))
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else None
    root = (
        tree.css_first("main") or tree.css_first("[role=main]") or tree.css_first("article")
        or tree.body or tree.root
    )  # fmt: skip
    if root is None:
        return Parsed("", title or None)
    for node in root.css(_DROP):
        node.decompose()
    out = TextBuilder()
    line: list[str] = []
    level = 0

    def flush() -> None:
        nonlocal level
        out.block(" ".join("".join(line).split()), level)
        line.clear()
        level = 0

    for node in root.traverse(include_text=True):
        tag = node.tag
        if tag == "-text":
            line.append(node.text_content or "")
        elif tag in _BLOCKS:
            flush()
            level = _HEADINGS.get(tag, 0)
        if out.size > limits.max_chars:
            raise ParseError(
                f"the HTML page has more than {limits.max_chars} characters of text "
                "(CITELINE_MAX_DOCUMENT_CHARS)"
            )
    flush()
    return out.build(title or None)
