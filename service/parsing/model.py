"""What a parser returns, the limits it honours and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Format = Literal["pdf", "docx", "pptx", "html", "markdown", "text"]

MEDIA_TYPES: dict[Format, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
}
FORMAT_OF_MEDIA_TYPE: dict[str, Format] = {v: k for k, v in MEDIA_TYPES.items()}
PAGED: frozenset[Format] = frozenset({"pdf", "pptx"})


class ParseError(Exception):
    """The file cannot be turned into text; `str(exc)` is the reason a user reads."""


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading at `offset` of the canonical text; level 1 is the outermost."""

    offset: int
    level: int
    title: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_pages: int = 2000
    max_chars: int = 2_000_000
    max_uncompressed_bytes: int = 200 * 1024 * 1024


@dataclass(slots=True)
class Parsed:
    """Canonical text and its structure. `page_starts[i]` is where page i + 1 begins."""

    text: str
    title: str | None = None
    page_starts: list[int] = field(default_factory=list)  # empty: not a paged format
    page_labels: list[str] = field(default_factory=list)  # printed labels, where the file has them
    headings: list[Heading] = field(default_factory=list)
    pages_without_text: list[int] = field(default_factory=list)  # 1-based


class TextBuilder:
    """Accumulates the canonical text block by block, recording headings and page starts."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.headings: list[Heading] = []
        self.page_starts: list[int] = []

    def page(self) -> None:
        self.page_starts.append(self.size + (2 if self.size else 0))

    def block(self, text: str, heading_level: int = 0) -> None:
        """A paragraph (or a heading of `heading_level` > 0), separated by a blank line."""
        text = text.strip()
        if not text:
            return
        if self.size:
            self.parts.append("\n\n")
            self.size += 2
        if heading_level:
            title = " ".join(text.split())
            self.headings.append(Heading(self.size, heading_level, title[:300]))
        self.parts.append(text)
        self.size += len(text)

    def build(self, title: str | None = None) -> Parsed:
        text = "".join(self.parts)
        # A page that added no text starts where the next text does, never past the end.
        starts = [min(s, len(text)) for s in self.page_starts]
        return Parsed(text, title, starts, headings=self.headings)
