"""Offsets for JavaScript: its strings index UTF-16 code units, Python's code points."""

from __future__ import annotations


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: one per code point, two for each one past U+FFFF."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
