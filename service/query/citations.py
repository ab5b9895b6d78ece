"""Citation markers checked while the answer streams.

The model cites with `[n]`, or groups like `[1, 3]`. `CitationFilter` rewrites the text as it
arrives: a group becomes one marker per valid number (`[1, 7]` → `[1]` when only 1 was given),
and a marker with no valid number is removed together with the spaces before it
(`"Paris [7]."` → `"Paris."`). Text that may still turn into a marker (a trailing `[`, `[1`,
`[1, ` or trailing spaces) is held back until the next delta settles it, so the emitted text
and the citation spans do not depend on how the model's output was split into deltas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from service.utf16 import utf16_len

__all__ = ["Citation", "CitationFilter", "defuse_markers", "filter_citations"]

# Spaces before the marker belong to it: they go when the marker goes.
_MARKER = re.compile(r"([ \t]*)\[(\d{1,3}(?:[ \t]*,[ \t]*\d{1,3})*)\]")
# A suffix that may still become (part of) a marker once more text arrives. Digits are not
# limited here: "[1234" is held until its next character shows it is no marker.
_UNSETTLED = re.compile(r"[ \t]*(?:\[[\d, \t]*)?\Z")


# "[2]", "[1, 3]" or an unclosed "[2" in text the answerer did not write (a source's own
# footnote marker, an injected "[2]"): shown with full-width brackets, which no marker uses.
_FOREIGN_GROUP = re.compile(r"\[([\d, \t]*\d[\d, \t]*)\]")
_FOREIGN_OPEN = re.compile(r"\[(?=[ \t]*\d)")


def defuse_markers(text: str) -> str:
    """`text` with every bracketed number made inert: "[2]" → "［2］", "[1" → "［1".

    Only markers the answerer itself writes may become citations; text it copies (a source
    sentence, a model quoting a source) passes through this first.
    """
    if "[" not in text:
        return text
    return _FOREIGN_OPEN.sub("［", _FOREIGN_GROUP.sub(r"［\1］", text))


@dataclass(frozen=True, slots=True)
class Citation:
    """Marker `[n]` at `answer[start:end]` of the emitted answer (code points), which is
    `[start_utf16:end_utf16]` in UTF-16 code units (JavaScript's string indices)."""

    n: int
    start: int
    end: int
    start_utf16: int
    end_utf16: int


class CitationFilter:
    """Streams an answer through, keeping only markers that point at a provided source."""

    def __init__(self, valid: Iterable[int]) -> None:
        self.valid = frozenset(valid)
        self.cited: list[int] = []  # in order of first use
        self.spans: list[Citation] = []
        self._pending = ""
        self._emitted = 0  # characters emitted so far
        self._emitted_utf16 = 0  # the same in UTF-16 code units

    @property
    def emitted_chars(self) -> int:
        return self._emitted

    def feed(self, delta: str) -> str:
        """Text that is safe to emit now (possibly empty)."""
        self._pending += delta
        cut = _UNSETTLED.search(self._pending)
        assert cut is not None  # the pattern matches the empty suffix at least
        ready, self._pending = self._pending[: cut.start()], self._pending[cut.start() :]
        return self._rewrite(ready)

    def flush(self) -> str:
        """The held-back rest, at the end of the answer."""
        ready, self._pending = self._pending, ""
        return self._rewrite(ready)

    def _rewrite(self, text: str) -> str:
        out: list[str] = []
        last = 0
        for match in _MARKER.finditer(text):
            self._emit(out, text[last : match.start()])
            last = match.end()
            numbers = [int(x) for x in match.group(2).split(",")]
            kept = [n for n in dict.fromkeys(numbers) if n in self.valid]
            if not kept:
                continue
            self._emit(out, match.group(1))
            for n in kept:
                marker = f"[{n}]"
                start, start_utf16 = self._emitted, self._emitted_utf16
                self._emit(out, marker)
                self.spans.append(
                    Citation(n, start, self._emitted, start_utf16, self._emitted_utf16)
                )
                if n not in self.cited:
                    self.cited.append(n)
        self._emit(out, text[last:])
        return "".join(out)

    def _emit(self, out: list[str], piece: str) -> None:
        out.append(piece)
        self._emitted += len(piece)
        self._emitted_utf16 += utf16_len(piece)


def filter_citations(answer: str, valid: Iterable[int]) -> tuple[str, CitationFilter]:
    """The whole answer at once: the rewritten text and the filter holding cited and spans."""
    citations = CitationFilter(valid)
    text = citations.feed(answer) + citations.flush()
    return text, citations
