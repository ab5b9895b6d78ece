"""Plain text and Markdown: decoded bytes are the canonical text itself, unchanged.

Decoding: a BOM decides (UTF-8, UTF-16 LE/BE); otherwise UTF-8 if the bytes are valid UTF-8,
else Windows-1252 (Latin-1 plus typographic quotes), which decodes any byte.
Markdown headings (ATX `#` lines and setext underlines, outside fenced code) are recorded so
that they start chunks; the text keeps its markup, so spans index what the author wrote.
"""

from __future__ import annotations

import codecs
import re

from service.parsing.model import Heading, Parsed

_BOM_CODECS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def decode(data: bytes) -> str:
    for bom, codec in _BOM_CODECS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_text(data: bytes) -> Parsed:
    return Parsed(_normalise(decode(data)))


def parse_markdown(data: bytes) -> Parsed:
    text = _normalise(decode(data))
    return Parsed(text, markdown_title(text), headings=markdown_headings(text))


def _normalise(text: str) -> str:
    """Line ends as `\\n` and no NUL: what every consumer of the canonical text expects."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def markdown_headings(text: str) -> list[Heading]:
    headings: list[Heading] = []
    fence: str | None = None
    offset, previous, previous_offset = 0, "", 0
    for line in text.split("\n"):
        fenced = _FENCE.match(line)
        if fence is not None:
            if fenced and fenced.group(1)[0] == fence[0] and len(fenced.group(1)) >= len(fence):
                fence = None
        elif fenced:
            fence = fenced.group(1)
        elif m := _ATX.match(line):
            headings.append(Heading(offset, len(m.group(1)), m.group(2)[:300]))
        elif _SETEXT.match(line) and previous.strip() and not _ATX.match(previous):
            level = 1 if line.strip()[0] == "=" else 2
            headings.append(Heading(previous_offset, level, previous.strip()[:300]))
        previous, previous_offset = line, offset
        offset += len(line) + 1
    return headings


def markdown_title(text: str) -> str | None:
    first = next((h for h in markdown_headings(text[:20_000]) if h.level == 1), None)
    return first.title if first else None
