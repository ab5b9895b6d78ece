"""Chunk spans in UTF-16 code units, as JavaScript's String.slice counts them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.indexing.structure import Layout, chunk_document
from service.utf16 import utf16_len


def js_slice(text: str, start: int, end: int) -> str:
    return text.encode("utf-16-le")[2 * start : 2 * end].decode("utf-16-le")


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("é中") == 2
    assert utf16_len("🌋a😀") == 5


def test_chunk_spans_after_emoji_match_javascript_indices() -> None:
    text = ("Volcano 🌋 facts. " * 60) + "😀 Mount Etna erupts often. " * 60
    chunks = chunk_document(text, Layout(), max_tokens=64, overlap_tokens=8)
    assert len(chunks) > 3
    for c in chunks:
        assert c.start_utf16 is not None and c.end_utf16 is not None
        assert js_slice(text, c.start_utf16, c.end_utf16) == c.text == text[c.start : c.end]
    assert chunks[-1].start_utf16 > chunks[-1].start


@given(st.text(min_size=1, max_size=400))
def test_any_text_round_trips(text: str) -> None:
    for c in chunk_document(text, Layout(), max_tokens=64, overlap_tokens=8):
        assert c.start_utf16 is not None and c.end_utf16 is not None
        assert js_slice(text, c.start_utf16, c.end_utf16) == text[c.start : c.end]
