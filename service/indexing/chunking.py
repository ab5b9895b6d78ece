"""Split a document into overlapping, token-bounded chunks whose spans index the original text.

The text is cut into atoms (runs of non-whitespace), each break between atoms is given a
strength (paragraph, sentence, line, space), and the text is encoded once to place every atom
on the token axis. A chunk then grows to the budget by bisection and ends at the strongest break
in its last part; its exact token count is checked once and the chunk shrunk in the rare case the
estimate was low (tokens of a substring differ slightly from the tokens of the whole text).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.tokens import encoding, token_byte_lengths

MIN_MAX_TOKENS = 64
MAX_MAX_TOKENS = 4096

# Break strengths; stored +1 in a bytearray so that bytes.find/rfind can search them in C.
INTRA, SPACE, LINE, SENTENCE, PARAGRAPH, SECTION = range(-1, 5)
_STRENGTHS = range(SECTION, INTRA - 1, -1)

# A chunk ends at the strongest break found past that kind's minimum fill of the budget: a
# paragraph break is worth a chunk only a quarter full, a sentence end one half full (sentences
# are short, so one is nearly always near the budget), any space or an in-word cut anywhere.
_CUT_PREFS = ((SECTION, 0.25), (PARAGRAPH, 0.25), (SENTENCE, 0.5), (LINE, 0.5), (SPACE, 0.0))

_I64 = npt.NDArray[np.int64]
_U32 = npt.NDArray[np.uint32]

# Character classes, looked up for code points below U+FFFF (U+FFFF, a non-character, stands for
# all above: none of them is whitespace, a line break or punctuation we look for).
_SPACE, _BREAK, _TERMINAL, _CLOSER, _CJK_TERMINAL = 1, 2, 4, 8, 16
_CLASS = np.zeros(0x10000, dtype=np.uint8)
_CLASS[[c for c in range(0x10000) if chr(c).isspace()]] |= _SPACE
_CLASS[[ord(c) for c in "\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"]] |= _BREAK  # as str.splitlines
_CLASS[[ord(c) for c in ".!?…‼⁇⁈⁉。！？؟।"]] |= _TERMINAL
_CLASS[[ord(c) for c in "\"')]}»”’」』）"]] |= _CLOSER
# Scripts written without spaces still break after these, so an atom is split there.
_CJK_TERMINALS = "。！？"
_CLASS[[ord(c) for c in _CJK_TERMINALS]] |= _CJK_TERMINAL


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document: `text == document[start:end]`, with `tokens` cl100k tokens."""

    index: int
    text: str
    start: int
    end: int
    tokens: int
    # Where it stands in a file (see `structure`): 1-based pages, the printed label of the
    # first, and the heading path of its section.
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    section: str | None = None
    # The same span in UTF-16 code units (JavaScript's String indices), set by
    # `structure.chunk_document`.
    start_utf16: int | None = None
    end_utf16: int | None = None


def chunk_text(text: str, max_tokens: int = 512, overlap_tokens: int = 64) -> list[Chunk]:
    """Chunks of at most `max_tokens` tokens, consecutive ones sharing up to `overlap_tokens`.

    Chunks are in order, trimmed of whitespace, and together cover every non-whitespace
    character. Cuts prefer paragraph breaks, then sentence ends, then line breaks, then spaces;
    a word is cut only when it alone exceeds `max_tokens`. A chunk repeats the end of the one
    before, from the strongest break (sentence start, else word) found between half and all of
    `overlap_tokens` back; the exact shared count never exceeds `overlap_tokens`, nor (about)
    half the previous chunk.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise ValueError(f"max_tokens must be an int, got {max_tokens!r}")
    if isinstance(overlap_tokens, bool) or not isinstance(overlap_tokens, int):
        raise ValueError(f"overlap_tokens must be an int, got {overlap_tokens!r}")
    if not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
        raise ValueError(
            f"max_tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}, got {max_tokens}"
        )
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError(
            f"overlap_tokens must be between 0 and max_tokens // 2 = {max_tokens // 2}, "
            f"got {overlap_tokens}"
        )
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if start >= end:  # blank: lstrip ate everything
        return []
    tokens = encoding().encode_ordinary(text[start:end])
    if len(tokens) <= max_tokens:  # the common short document: its count is already exact
        return [Chunk(0, text[start:end], start, end, len(tokens))]
    return _Chunker(text, start, tokens, max_tokens, overlap_tokens).run()


class _Chunker:
    """Atoms of one text with their break strengths and approximate token positions."""

    def __init__(
        self, text: str, offset: int, tokens: list[int], max_tokens: int, overlap_tokens: int
    ) -> None:
        self.text = text
        self.max = max_tokens
        self.overlap = overlap_tokens
        self.enc = encoding()
        # One element per str index: lone surrogates pass through, non-BMP chars are one each.
        cp: _U32 = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        starts, ends, strength = _atoms(text, cp)
        self.tok_starts = self._token_starts(cp, offset, tokens)
        # Atom k spans tokens [a0[k], a1[k]): a token starting in the gap before an atom counts
        # for that atom (" word" is one token), which slightly overestimates - the safe side.
        a1 = np.searchsorted(self.tok_starts, ends, side="left")
        a0 = np.concatenate(([0], a1[:-1]))
        # Compact int arrays (8 bytes an atom, not 36 as list items) that bisect can search.
        self.starts, self.ends, self.a0, self.a1 = map(_int_array, (starts, ends, a0, a1))
        self.breaks = bytearray((strength + 1).astype(np.uint8).tobytes())
        # Exact counts only for atoms the estimate calls long: all others fit with room to spare.
        for k in np.flatnonzero(a1 - a0 > max_tokens // 4)[::-1]:
            if self.count(self.starts[k], self.ends[k]) > max_tokens:
                self._split(int(k))

    def _token_starts(self, cp: _U32, offset: int, tokens: list[int]) -> _I64:
        """Character offset at which each token of text[offset:] starts."""
        lengths = token_byte_lengths()[np.array(tokens, dtype=np.int64)]
        byte_starts: _I64 = np.cumsum(lengths) - lengths
        if self.text.isascii():
            return byte_starts + offset
        cp = cp[offset:]
        char_bytes = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
        char_byte_starts = np.cumsum(char_bytes) - char_bytes
        # A token starting inside a multi-byte character is placed at that character.
        char_starts = np.searchsorted(char_byte_starts, byte_starts, side="right") - 1
        return char_starts.astype(np.int64) + offset

    def count(self, start: int, end: int) -> int:
        return len(self.enc.encode_ordinary(self.text[start:end]))

    def _split(self, k: int) -> None:
        """Cut atom k, a word longer than a chunk, at its token starts (or every character)."""
        s, e = self.starts[k], self.ends[k]
        ts = self.tok_starts
        cuts = np.unique(ts[np.searchsorted(ts, s, side="right") : np.searchsorted(ts, e)])
        if not cuts.size:
            cuts = np.arange(s + 1, e)
        if not cuts.size:
            raise RuntimeError("a single character exceeds the token budget")  # ≤ 4 tokens
        bounds = np.concatenate(([s], cuts, [e]))
        a1 = np.searchsorted(ts, bounds[1:], side="left")
        self.a0[k : k + 1] = _int_array(np.concatenate(([self.a0[k]], a1[:-1])))
        self.a1[k : k + 1] = _int_array(a1)
        self.starts[k : k + 1] = _int_array(bounds[:-1])
        self.ends[k : k + 1] = _int_array(bounds[1:])
        self.breaks[k : k + 1] = bytes([self.breaks[k]]) + bytes(cuts.size)  # INTRA + 1 == 0

    def run(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        i = new = 0  # first atom of the chunk; first atom not in the previous chunk
        while True:
            j = self._cut(i, new, self.max)
            n = self.count(self.starts[i], self.ends[j])
            while n > self.max:
                if j > new:  # the estimate was low: cut earlier
                    j = self._cut(i, new, self.a1[j] - self.a0[i] - (n - self.max), hi=j - 1)
                elif i < new:  # the overlap and the next atom do not fit together
                    i = new
                    j = self._cut(i, new, self.max)
                else:  # one atom the estimate thought short is too long
                    self._split(j)
                    j = self._cut(i, new, self.max)
                n = self.count(self.starts[i], self.ends[j])
            start, end = self.starts[i], self.ends[j]
            chunks.append(Chunk(len(chunks), self.text[start:end], start, end, n))
            if j == len(self.starts) - 1:
                return chunks
            i, new = self._overlap_start(i, j, n), j + 1

    def _cut(self, i: int, lo: int, limit: int, hi: int | None = None) -> int:
        """Last atom (in lo..hi) of a chunk starting at atom i: the strongest break in budget."""
        base, a1 = self.a0[i], self.a1
        top = len(a1) if hi is None else hi + 1
        j_max = max(lo, bisect_right(a1, base + limit, lo, top) - 1)
        if j_max == len(a1) - 1:
            return j_max
        for strength, fill in _CUT_PREFS:
            j_min = bisect_left(a1, base + int(limit * fill), lo, j_max + 1)
            k = self._rfind(strength, j_min + 1, j_max + 2)  # break after atom j is breaks[j+1]
            if k >= 0:
                return k - 1
        return j_max  # only in-word cuts are left

    def _overlap_start(self, i: int, j: int, n: int) -> int:
        """First atom of the chunk after one ending at atom j (j + 1 when nothing overlaps)."""
        nxt = j + 1
        cap = min(self.overlap, n // 2)
        while cap > 0:
            k = self._overlap_candidate(i, j, cap)
            if k == nxt:
                break
            shared = self.count(self.starts[k], self.ends[j])
            if shared <= self.overlap:
                return k
            cap -= shared - self.overlap  # the estimate was low: aim shorter
        return nxt

    def _overlap_candidate(self, i: int, j: int, cap: int) -> int:
        """The strongest break among overlaps of cap/2..cap estimated tokens, the longest first."""
        nxt, end, a0 = j + 1, self.a1[j], self.a0
        # The overlap leaves room for the next atom.
        k_lo = bisect_left(a0, max(end - cap, self.a1[nxt] - self.max), i + 1, nxt)
        k_hi = min(nxt, max(k_lo + 1, bisect_right(a0, end - cap // 2, k_lo, nxt)))
        for strength in _STRENGTHS:
            k = self._find(strength, k_lo, k_hi)
            if k >= 0:
                return k
        return nxt

    def _rfind(self, strength: int, lo: int, hi: int) -> int:
        """Highest index in [lo, hi) whose break is at least `strength`, or -1."""
        return max(self.breaks.rfind(v, lo, hi) for v in range(strength + 1, SECTION + 2))

    def _find(self, strength: int, lo: int, hi: int) -> int:
        """Lowest index in [lo, hi) whose break is at least `strength`, or -1."""
        hits = [
            f for v in range(strength + 1, SECTION + 2) if (f := self.breaks.find(v, lo, hi)) >= 0
        ]
        return min(hits, default=-1)


def _int_array(values: npt.NDArray[np.integer[Any]]) -> array[int]:
    out = array("q")
    out.frombytes(values.astype(np.int64).tobytes())
    return out


def _atoms(text: str, cp: _U32) -> tuple[_I64, _I64, _I64]:
    """Start and end of each atom, and the strength of the break before it (0 for the first)."""
    cls = _CLASS[np.minimum(cp, 0xFFFF)]
    solid = (cls & _SPACE) == 0
    edges = np.diff(solid.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if any(c in text for c in _CJK_TERMINALS):
        term = (cls & _CJK_TERMINAL) != 0
        inner = np.flatnonzero(term[:-1] & solid[1:] & ~term[1:]) + 1
        starts = np.sort(np.concatenate((starts, inner)))
        ends = np.sort(np.concatenate((ends, inner)))

    # Line breaks between atoms, as str.splitlines() counts them: CRLF is one, U+2029 two.
    breaks = np.flatnonzero(cls & _BREAK)
    weight = np.where(cp[breaks] == 0x2029, 2, 1)
    after = np.minimum(breaks + 1, len(cp) - 1)
    weight[(cp[breaks] == 0x0D) & (cp[after] == 0x0A) & (breaks + 1 < len(cp))] = 0
    lines = np.concatenate(([0], np.cumsum(weight)))
    newlines = (
        lines[np.searchsorted(breaks, starts[1:])] - lines[np.searchsorted(breaks, ends[:-1])]
    )

    last = ends[:-1] - 1
    closed = ((cls[last] & _CLOSER) != 0) & (last > starts[:-1])
    last_cls = cls[last - closed]
    first = cp[starts[1:]]
    # "e.g. the" is not a sentence end: a period followed by a lower-case word.
    period = cp[last - closed] == 0x2E
    sentence = ((last_cls & _TERMINAL) != 0) & ~(period & (first >= 0x61) & (first <= 0x7A))

    strength = np.where(
        newlines >= 2,
        np.where(first == 0x23, SECTION, PARAGRAPH),  # a blank line before a "#" heading
        np.where(sentence, SENTENCE, np.where(newlines == 1, LINE, SPACE)),
    )
    return starts, ends, np.concatenate(([SPACE], strength)).astype(np.int64)
