"""Structure-aware chunking: headings start chunks, pages and heading paths on every chunk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.indexing.structure import Layout, chunk_document
from service.parsing.text import markdown_headings


def layout_of(text: str, page_starts: tuple[int, ...] = (), labels: tuple[str, ...] = ()) -> Layout:
    headings = [(h.offset, h.level, h.title) for h in markdown_headings(text)]
    return Layout(page_starts, labels, headings)


def test_headings_start_chunks_and_name_their_path() -> None:
    text = (
        "Preface words.\n\n# 5. Basics\n\n## 5.6 debian/rules\n\nThe rules file.\n\n# 6. More\n\nx."
    )
    chunks = chunk_document(text, layout_of(text), 512, 64)
    assert [c.section for c in chunks] == [None, "5. Basics › 5.6 debian/rules", "6. More"]
    assert chunks[1].text.startswith("# 5. Basics") and "The rules file." in chunks[1].text
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.index for c in chunks] == [0, 1, 2]


def test_a_chunk_knows_its_pages_and_the_first_ones_label() -> None:
    pages = ["Page one text. " * 30, "Page two text. " * 30, "Page three. " * 30]
    text = "\n\n".join(pages)
    starts = (0, len(pages[0]) + 2, len(pages[0]) + len(pages[1]) + 4)
    chunks = chunk_document(text, Layout(starts, ("i", "ii", "1")), 64, 0)
    for c in chunks:
        page = max(i for i, s in enumerate(starts, start=1) if s <= c.start)
        assert (c.page, c.page_label) == (page, ("i", "ii", "1")[page - 1])
    (whole,) = chunk_document(text, Layout(starts, ("i", "ii", "1")), 1024, 0)
    assert (whole.page, whole.page_end, whole.page_label) == (1, 3, "i")
    assert chunk_document("no pages", Layout(), 64, 0)[0].page is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.text("abc xyz.\n", min_size=0, max_size=300)),
        min_size=1, max_size=8,
    )
)  # fmt: skip
def test_spans_are_exact_and_cover_every_word(parts: list[tuple[int, str]]) -> None:
    text = "".join(
        ("#" * level + " Head\n\n" if level else "") + body + "\n\n" for level, body in parts
    )
    chunks = chunk_document(text, layout_of(text), 64, 16)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
