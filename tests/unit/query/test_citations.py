"""CitationFilter: invalid markers removed while streaming, spans exact, splits irrelevant."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from service.query.citations import Citation, CitationFilter, filter_citations

VALID = {1, 2, 3}


def stream(pieces: list[str], valid: set[int] = VALID) -> tuple[str, CitationFilter]:
    f = CitationFilter(valid)
    out = "".join(f.feed(p) for p in pieces) + f.flush()
    return out, f


def reference(text: str, valid: set[int]) -> str:
    """The rewrite applied to the whole text at once, written independently."""

    def keep(m: re.Match[str]) -> str:
        numbers = [n for n in dict.fromkeys(int(x) for x in m.group(2).split(",")) if n in valid]
        return m.group(1) + "".join(f"[{n}]" for n in numbers) if numbers else ""

    return re.sub(r"([ \t]*)\[(\d{1,3}(?:[ \t]*,[ \t]*\d{1,3})*)\]", keep, text)


def test_valid_markers_pass_with_spans() -> None:
    out, f = stream(["Etna is in Sicily [1]. It erupts [2][1]."])
    assert out == "Etna is in Sicily [1]. It erupts [2][1]."
    assert f.cited == [1, 2]
    assert [out[c.start : c.end] for c in f.spans] == ["[1]", "[2]", "[1]"]
    assert f.spans[0] == Citation(1, 18, 21, 18, 21)


def test_invalid_markers_go_with_the_space_before() -> None:
    out, f = stream(["Etna is in Sicily [7]. It erupts [1]  [9] often [0]."])
    assert out == "Etna is in Sicily. It erupts [1] often."
    assert f.cited == [1]
    assert [out[c.start : c.end] for c in f.spans] == ["[1]"]


def test_groups_keep_only_valid_numbers() -> None:
    out, f = stream(["A [1, 7]. B [7, 8]. C [3,2, 3]."])
    assert out == "A [1]. B. C [3][2]."
    assert f.cited == [1, 3, 2]
    assert [out[c.start : c.end] for c in f.spans] == ["[1]", "[3]", "[2]"]


def test_not_markers_are_left_alone() -> None:
    text = "Arrays a[i], [x], [1234], [1-3], [ 1], [], newline\n[7] end"
    out, f = stream([text])
    assert out == "Arrays a[i], [x], [1234], [1-3], [ 1], [], newline\n end"
    assert f.cited == []


def test_incomplete_marker_is_held_until_resolved() -> None:
    f = CitationFilter(VALID)
    assert f.feed("Etna is in Sicily") == "Etna is in Sicily"
    assert f.feed(" [") == ""
    assert f.feed("7") == ""
    assert f.feed("]") == ""
    assert f.feed(". It") == ". It"
    assert f.feed(" erupts [1") == " erupts"
    assert f.feed("]") == " [1]"
    assert f.feed(" [2") == ""
    assert f.flush() == " [2"  # never closed: plain text after all
    assert f.spans == [Citation(1, 29, 32, 29, 32)]


def test_filter_citations_whole_answer() -> None:
    text, f = filter_citations("X [4] [2].", {2})
    assert text == "X [2]." and f.cited == [2]


alphabet = st.sampled_from([*"ab .,\n[]0123456789 \t", "[1]", "[7]", "[2, 9]", " ["])


@settings(max_examples=400, deadline=None)
@given(st.lists(alphabet, max_size=60), st.data())
def test_any_split_gives_the_same_text_and_spans(tokens: list[str], data: st.DataObject) -> None:
    text = "".join(tokens)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]

    whole, f_whole = stream([text])
    split, f_split = stream(pieces)
    by_char, f_char = stream(list(text))

    assert whole == split == by_char == reference(text, VALID)
    assert f_whole.spans == f_split.spans == f_char.spans
    assert f_whole.cited == f_split.cited
    for c in f_whole.spans:
        assert whole[c.start : c.end] == f"[{c.n}]" and c.n in VALID


def test_spans_are_also_counted_in_utf16_units_after_an_emoji() -> None:
    # "🌋" is one code point but two UTF-16 units: JavaScript's indices run one ahead after it.
    text, f = filter_citations("Etna 🌋 erupts [1]. Again [1]", [1])
    first, second = f.spans
    assert text[first.start : first.end] == "[1]" and text[second.start : second.end] == "[1]"
    assert (first.start_utf16, first.end_utf16) == (first.start + 1, first.end + 1)
    units = text.encode("utf-16-le")
    assert units[2 * second.start_utf16 : 2 * second.end_utf16].decode("utf-16-le") == "[1]"
