"""chunk_text: exact spans, token bounds, coverage, overlap, and where it prefers to cut."""

from __future__ import annotations

import base64
import random
import re
import time
from bisect import bisect_right
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.indexing.chunking import Chunk, chunk_text
from service.tokens import count_tokens

_RUN = re.compile(r"\S+")
_CJK_TERMINALS = "。！？"


def _check_invariants(text: str, chunks: list[Chunk], max_tokens: int, overlap: int) -> None:
    """Every property chunk_text promises for any input."""
    if not text.strip():
        assert chunks == []
        return
    assert chunks, "non-blank text gives at least one chunk"
    run_starts = [m.start() for m in _RUN.finditer(text)]
    run_tokens: dict[int, int] = {}
    covered = bytearray(len(text))
    for k, c in enumerate(chunks):
        assert c.index == k
        assert 0 <= c.start < c.end <= len(text)
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip(), "no leading or trailing whitespace"
        assert c.tokens == count_tokens(c.text) <= max_tokens
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
        for p in (c.start, c.end):
            if 0 < p < len(text) and not text[p - 1].isspace() and not text[p].isspace():
                # A cut inside a word: only in one too long for a chunk, or after "。".
                s = run_starts[bisect_right(run_starts, p) - 1]
                if s not in run_tokens:
                    run_tokens[s] = count_tokens(_RUN.match(text, s).group())  # type: ignore[union-attr]
                assert run_tokens[s] > max_tokens or text[p - 1] in _CJK_TERMINALS
    for prev, nxt in pairwise(chunks):
        assert prev.start < nxt.start and prev.end < nxt.end, "in order, each adds text"
        if nxt.start < prev.end:
            shared = count_tokens(text[nxt.start : prev.end])
            assert shared <= overlap <= max_tokens // 2
    lost = [i for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert lost == []


_WORDS = st.sampled_from(
    ["the", "Retrieval", "naïve", "café", "東京", "😀", "👍🏽", "e\u0301", "x\u0301\u0302", "𝔘𝔫𝔦",
     "don't", "3.14", "(see", "note)", "<|endoftext|>", "#", "e.g.", "U.S.", "«quoted»", "\u200b"]
)  # fmt: skip
_ENDS = st.sampled_from([".", "!", "?", "…", "。", "！", '."', ".)", ""])
_SEPARATORS = st.sampled_from(
    [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\n\n", "\r\n\r\n", "\n \n", "\u3000", "\xa0",
     "\u2029", "\u2028", "\r", "\x0c", " \n\n# "]
)  # fmt: skip
_LONG_WORDS = st.one_of(
    st.integers(200, 6000).map(lambda n: base64.b64encode(random.Random(n).randbytes(n)).decode()),
    st.integers(100, 3000).map(lambda n: "ab\u0301" * n),
    st.integers(100, 2000).map(lambda n: "😀" * n),
    st.integers(50, 600).map(lambda n: "東京タワー" * n),  # no spaces, no sentence ends
)
_FREE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@st.composite
def _documents(draw: st.DrawFn) -> str:
    parts: list[str] = [draw(st.sampled_from(["", " ", "\n\n", "\r\n"]))]
    for _ in range(draw(st.integers(0, 300))):
        kind = draw(st.integers(0, 40))
        if kind == 0:
            parts.append(draw(_LONG_WORDS))
        elif kind == 1:
            parts.append(draw(_FREE_TEXT))
        else:
            parts.append(draw(_WORDS) + draw(_ENDS) if kind < 8 else draw(_WORDS))
        parts.append(draw(_SEPARATORS))
    return "".join(parts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_documents(), max_tokens=st.integers(64, 700), data=st.data())
def test_chunk_invariants(text: str, max_tokens: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, max_tokens // 2))
    _check_invariants(text, chunk_text(text, max_tokens, overlap), max_tokens, overlap)


@settings(max_examples=60, deadline=None)
@given(text=_FREE_TEXT.map(lambda s: s * 40), max_tokens=st.integers(64, 200))
def test_chunk_invariants_on_arbitrary_unicode(text: str, max_tokens: int) -> None:
    overlap = max_tokens // 2
    _check_invariants(text, chunk_text(text, max_tokens, overlap), max_tokens, overlap)


def _prose(rng: random.Random, sentences: int, words: tuple[int, int] = (6, 14)) -> str:
    vocab = ["river", "bank", "loan", "water", "grain", "trade", "city", "harbor", "stone"]
    out = []
    for _ in range(sentences):
        body = " ".join(rng.choice(vocab) for _ in range(rng.randint(*words)))
        out.append(body.capitalize() + ".")
    return " ".join(out)


def test_cuts_at_the_blank_line_between_paragraphs_that_fit() -> None:
    rng = random.Random(7)
    first, second = _prose(rng, 25), _prose(rng, 25)
    assert 200 < count_tokens(first) < 400 and 200 < count_tokens(second) < 400
    text = f"{first}\n\n{second}"
    chunks = chunk_text(text, max_tokens=512, overlap_tokens=64)
    assert len(chunks) == 2
    assert chunks[0].text == first
    assert chunks[1].text.endswith(second)
    crlf = text.replace("\n", "\r\n")
    chunks = chunk_text(crlf, max_tokens=512, overlap_tokens=0)
    assert [c.text for c in chunks] == [first, second]
    assert crlf[chunks[1].start : chunks[1].end] == second


def test_prefers_a_sentence_end_to_a_word_boundary() -> None:
    text = _prose(random.Random(3), 80)
    chunks = chunk_text(text, max_tokens=64, overlap_tokens=0)
    assert len(chunks) > 10
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.text[0].isupper() for c in chunks)  # and so starts at a sentence


def test_cuts_at_a_word_boundary_when_no_sentence_ends() -> None:
    text = " ".join(["alpha beta gamma delta"] * 200)
    chunks = chunk_text(text, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    for c in chunks:
        assert c.start == 0 or text[c.start - 1] == " "
        assert c.end == len(text) or text[c.end] == " "
    assert all(c.tokens >= 60 for c in chunks[:-1])  # a word cut packs the chunk


def test_a_heading_starts_a_chunk_rather_than_ending_one() -> None:
    rng = random.Random(5)
    text = f"# One\n\n{_prose(rng, 30)}\n\n# Two\n\n{_prose(rng, 30)}"
    chunks = chunk_text(text, max_tokens=512, overlap_tokens=0)
    assert len(chunks) == 2
    assert chunks[1].text.startswith("# Two")


def test_overlap_starts_at_a_sentence_and_stays_within_budget() -> None:
    text = _prose(random.Random(11), 200, words=(4, 8))
    chunks = chunk_text(text, max_tokens=128, overlap_tokens=32)
    assert len(chunks) > 10
    for prev, nxt in pairwise(chunks):
        assert nxt.start < prev.end
        shared = count_tokens(text[nxt.start : prev.end])
        assert 16 <= shared <= 32
        assert text[nxt.start - 2 : nxt.start] == ". "


def test_zero_overlap_gives_disjoint_chunks() -> None:
    text = _prose(random.Random(2), 120)
    chunks = chunk_text(text, max_tokens=100, overlap_tokens=0)
    assert all(a.end < b.start for a, b in pairwise(chunks))


def test_only_a_word_longer_than_the_budget_is_cut() -> None:
    blob = base64.b64encode(random.Random(1).randbytes(7500)).decode()  # 10k characters
    text = f"Intro words here. {blob} and the outro."
    chunks = chunk_text(text, max_tokens=256, overlap_tokens=32)
    _check_invariants(text, chunks, 256, 32)
    blob_start = text.index(blob)
    inside = [c for c in chunks if blob_start < c.start < blob_start + len(blob)]
    assert len(inside) >= 5  # cut inside the blob...
    assert chunks[0].text == "Intro words here."  # ...but not before reaching it
    assert all(c.tokens >= 200 for c in chunks[1:-1])


def test_crlf_and_non_bmp_offsets_are_exact() -> None:
    para = "😀 Ünïcödé 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 e\u0301 test sentence here. " * 20
    text = "\r\n\r\n".join([para] * 6) + "\r\n"
    chunks = chunk_text(text, max_tokens=128, overlap_tokens=16)
    _check_invariants(text, chunks, 128, 16)
    assert len(chunks) > 3


def test_character_table_agrees_with_str_isspace() -> None:
    from service.indexing.chunking import _CLASS, _SPACE

    assert [c for c in range(0x10000) if _CLASS[c] & _SPACE] == [
        c for c in range(0x10000) if chr(c).isspace()
    ]
    # Code points above the table all read as U+FFFF: none may be whitespace.
    assert not _CLASS[0xFFFF] and not any(chr(c).isspace() for c in range(0x10000, 0x110000))


def test_blank_text() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \r\n\t\u3000\u2029 ") == []


def test_short_text_is_one_trimmed_chunk() -> None:
    text = "\n\n  Hello, world.  \r\n"
    assert chunk_text(text) == [Chunk(0, "Hello, world.", 4, 17, 4)]


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [
        (63, 0, "max_tokens"),
        (4097, 0, "max_tokens"),
        (512, -1, "overlap_tokens"),
        (512, 257, "overlap_tokens"),
        (512.0, 0, "max_tokens"),
        (True, 0, "max_tokens"),
    ],
)
def test_rejects_bad_arguments(max_tokens: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chunk_text("some text", max_tokens, overlap)


def test_throughput() -> None:
    rng = random.Random(9)
    text = "\n\n".join(_prose(rng, rng.randint(5, 30)) for _ in range(300))
    chunk_text(text[:1000])  # load the encoding outside the timing
    start = time.perf_counter()
    chunks = chunk_text(text, max_tokens=512, overlap_tokens=64)
    elapsed = time.perf_counter() - start
    assert len(chunks) > 100
    # About 0.3 ms a chunk on one core; a generous bound that still catches quadratic work.
    assert elapsed / len(chunks) < 0.005
