"""A rule-based sentence splitter that keeps facts whole.

A sentence ends at `.`, `!` or `?` (with any closing quotes or brackets) followed by white
space and then something that can start a sentence (an upper-case letter, a digit, an opening
quote or bracket), or at the end of the text. It does not end:
- inside a token: decimals (3.14), versions (1.2.3), file names (setup.py), URLs, e-mail
  addresses, and "U.S." have no space after the inner dot;
- after a known abbreviation (e.g., i.e., Dr., etc., Fig., vs., No. ...), an initial
  ("J. R. R. Tolkien") or a list number at the start of a line ("1. Install");
- before a lower-case word ("release 1. then").
A blank line always ends a sentence; a single line break ends one only before a list item or
after a line that ends like a sentence or a heading (no closing punctuation, short line).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

ABBREVIATIONS = frozenset(
    """
    a.m p.m e.g i.e etc vs cf al approx ca c dept est fig figs eq eqs no nos op vol vols pp p
    ed eds rev mr mrs ms dr prof sr jr st mt ft inc ltd co corp bros gen gov lt col sgt capt
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
    u.s u.k u.n e.u ph.d b.a m.a b.sc m.sc no.
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# End punctuation, closing quotes/brackets, then the white space that follows.
_END = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s|$)")
_STARTS_SENTENCE = re.compile(r"[\"'“‘«(\[]?[A-Z0-9À-ÖØ-Þ\u0370-\u03ff\u0400-\u04ff]")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•‣◦]|\d{1,3}[.)]|[a-zA-Z][.)])[ \t]")
_WORD_BEFORE = re.compile(r"(\S+)$")
_CJK_END = re.compile(r"[。！？]+[」』）\"]*")
_HEADING_MAX = 60  # longer lines without end punctuation are taken as wrapped


def spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, trimmed of surrounding white space."""
    out: list[tuple[int, int]] = []
    start = 0
    for cut in _cuts(text):
        piece = text[start:cut]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            right = start + len(piece.rstrip())
            out.append((left, right))
        start = cut
    return out


def split(text: str) -> list[str]:
    return [text[a:b] for a, b in spans(text)]


def _cuts(text: str) -> Iterator[int]:
    """Offsets where a sentence ends, in order, the last one len(text)."""
    cuts = sorted({*_punctuation_cuts(text), *_line_cuts(text), *_cjk_cuts(text)})
    yield from cuts
    if not cuts or cuts[-1] != len(text):
        yield len(text)


def _punctuation_cuts(text: str) -> Iterator[int]:
    for m in _END.finditer(text):
        rest = text[m.end() :].lstrip()
        if rest and not _STARTS_SENTENCE.match(rest):
            continue  # the next word is lower case (or punctuation): no new sentence
        if m.group().startswith(".") and len(m.group().rstrip("\"'”’»)]")) == 1:
            before = _WORD_BEFORE.search(text, 0, m.start())
            if before is not None and _not_an_ending(text, before.group(1), before.start()):
                continue
        yield m.end()


def _not_an_ending(text: str, word: str, at: int) -> bool:
    """The dot after `word` (which starts at `at`) belongs to the word, not to the sentence."""
    bare = re.split(r"[-/–—]", word.lstrip("\"'“‘«([").lower())[-1]  # "Trinity-St"
    if bare in ABBREVIATIONS or bare.rstrip(".") in ABBREVIATIONS:
        return True
    if len(bare) == 1 and bare.isalpha():  # an initial: "J. Smith"
        return True
    if "." in bare and all(len(p) <= 2 for p in bare.split(".")):  # "U.S", "e.g"
        return True
    line_start = text.rfind("\n", 0, at) + 1
    return bare.isdigit() and len(bare) <= 3 and not text[line_start:at].strip()  # "1. Item"


def _line_cuts(text: str) -> Iterator[int]:
    for m in re.finditer(r"\n", text):
        before = text[text.rfind("\n", 0, m.start()) + 1 : m.start()].rstrip()
        after = text[m.end() :]
        if not before:
            continue
        if not after.strip() or after.lstrip(" \t").startswith("\n"):
            yield m.start()  # a blank line (or the end) follows
        elif _LIST_ITEM.match(after) or _LIST_ITEM.match(before + " "):
            yield m.start()  # a list item starts or ends here
        elif before[-1] in ".!?:;":
            yield m.start()
        elif len(before) < _HEADING_MAX and _STARTS_SENTENCE.match(after.lstrip()):
            yield m.start()  # a heading or a short line: a hard-wrapped line is longer


def _cjk_cuts(text: str) -> Iterator[int]:
    for m in _CJK_END.finditer(text):
        yield m.end()
