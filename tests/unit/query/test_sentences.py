"""The sentence splitter keeps abbreviations, numbers, names, file names and URLs whole."""

from __future__ import annotations

import pytest

from service.query.sentences import spans, split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris is big. Lyon is not.", ["Paris is big.", "Lyon is not."]),
        (
            "It grew 3.5 percent in 2020. Then it fell.",
            ["It grew 3.5 percent in 2020.", "Then it fell."],
        ),
        (
            "Install version 1.2.3 first. It needs Python.",
            ["Install version 1.2.3 first.", "It needs Python."],
        ),
        (
            "Edit setup.py and config.yaml now. Done.",
            ["Edit setup.py and config.yaml now.", "Done."],
        ),
        (
            "See https://example.com/a.b?c=d.e for more. Bye.",
            ["See https://example.com/a.b?c=d.e for more.", "Bye."],
        ),
        (
            "Use a fruit, e.g. Apples or pears. Eat them.",
            ["Use a fruit, e.g. Apples or pears.", "Eat them."],
        ),
        (
            "Dr. Smith met Mr. Jones in the U.S. Army.",
            ["Dr. Smith met Mr. Jones in the U.S. Army."],
        ),
        (
            "Trinity-St. Paul's Church stands. It is old.",
            ["Trinity-St. Paul's Church stands.", "It is old."],
        ),
        ("J. R. R. Tolkien wrote it. It is long.", ["J. R. R. Tolkien wrote it.", "It is long."]),
        (
            "It shipped in release 1. then 2 followed.",
            ["It shipped in release 1. then 2 followed."],
        ),
        ("Steps:\n1. Install it.\n2. Run it.", ["Steps:", "1. Install it.", "2. Run it."]),
        ("- one item\n- another item", ["- one item", "- another item"]),
        (
            "A line that was wrapped by an editor at sixty or so characters\nand goes on here.",
            ["A line that was wrapped by an editor at sixty or so characters\nand goes on here."],
        ),
        ("Heading\nThe body starts here.", ["Heading", "The body starts here."]),
        (
            "First paragraph without a stop\n\nSecond one.",
            ["First paragraph without a stop", "Second one."],
        ),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("Really? Yes! Fine.", ["Really?", "Yes!", "Fine."]),
        (
            "富士山は日本一高い山です。東京から見えます。",
            ["富士山は日本一高い山です。", "東京から見えます。"],
        ),
        ("", []),
        ("no end punctuation", ["no end punctuation"]),
    ],
)
def test_split(text: str, expected: list[str]) -> None:
    assert split(text) == expected


def test_spans_point_into_the_text() -> None:
    text = "  One here.  Two there.\n\nThree."
    assert [text[a:b] for a, b in spans(text)] == ["One here.", "Two there.", "Three."]
