"""Detection by content and each format's parser, on files the real libraries write."""

from __future__ import annotations

import pytest

from service.parsing.detect import TooLarge, Unsupported, detect
from service.parsing.dispatch import parse
from service.parsing.model import Limits, ParseError
from service.parsing.text import decode, markdown_headings
from tests.files.make_pdf import make_pdf
from tests.files.samples import SAMPLES, docx_sample, pptx_sample, zip_bomb

LIMITS = Limits()


@pytest.mark.parametrize("fmt", list(SAMPLES))
def test_the_content_decides_the_format_whatever_the_name(fmt: str) -> None:
    name, make = SAMPLES[fmt]
    data = make()
    assert detect(data, name, None, LIMITS).format == fmt
    if fmt not in ("markdown", "text", "html"):  # binary formats: any name, same answer
        assert detect(data, "renamed.txt", "text/plain", LIMITS).format == fmt


def test_what_is_not_a_supported_format_is_refused_by_name() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    with pytest.raises(Unsupported, match="Supported: PDF, DOCX, PPTX, HTML, Markdown"):
        detect(png, "scan.pdf", "application/pdf", LIMITS)
    with pytest.raises(Unsupported, match="neither DOCX nor PPTX"):
        import io
        import zipfile

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("xl/workbook.xml", "<workbook/>")
        detect(out.getvalue(), "book.docx", None, LIMITS)


def test_zip_bombs_and_oversized_decks_are_refused_from_the_listing() -> None:
    with pytest.raises(TooLarge, match="unpacks to"):
        detect(zip_bomb(), "bomb.docx", None, LIMITS)
    with pytest.raises(TooLarge, match="3 slides; the limit is 2"):
        detect(pptx_sample(), "deck.pptx", None, Limits(max_pages=2))


def test_text_encodings() -> None:
    assert decode("Größe".encode("utf-16")) == "Größe"
    assert decode("Größe".encode("utf-16-be").join([b"\xfe\xff", b""])) == "Größe"
    assert decode("Größe “x”".encode("cp1252")) == "Größe “x”"
    assert decode(b"\xef\xbb\xbfplain") == "plain"
    assert detect("Größe".encode("utf-16"), "a.txt", None, LIMITS).format == "text"
    crlf = parse(b"one\r\ntwo\rthree", "text", LIMITS).text
    assert crlf == "one\ntwo\nthree"


def test_markdown_headings_skip_code_fences_and_read_setext() -> None:
    text = "Title\n=====\n\n```\n# not one\n```\n\n## Real\n\nSub\n---\n"
    assert [(h.level, h.title) for h in markdown_headings(text)] == [
        (1, "Title"), (2, "Real"), (2, "Sub")
    ]  # fmt: skip
    assert text[markdown_headings(text)[1].offset :].startswith("## Real")


def test_docx_keeps_reading_order_and_tables() -> None:
    parsed = parse(docx_sample(), "docx", LIMITS)
    text = parsed.text
    assert text.index("Granary") < text.index("four hundred sacks") < text.index("Barley | 400")
    assert [h.title for h in parsed.headings] == ["Estate records", "Granary"]
    assert all(text[h.offset :].startswith(h.title) for h in parsed.headings)


def test_pptx_slides_are_pages_with_their_notes() -> None:
    parsed = parse(pptx_sample(), "pptx", LIMITS)
    assert len(parsed.page_starts) == 3
    second = parsed.text[parsed.page_starts[1] : parsed.page_starts[2]]
    assert second.startswith("Ferries") and "Notes: Mention the new timetable." in second
    assert parsed.title == "Harbour report"


def test_html_main_text_only() -> None:
    parsed = parse(SAMPLES["html"][1](), "html", LIMITS)
    assert parsed.title == "Coastal logbook"
    assert "secret" not in parsed.text and "Copyright footer" not in parsed.text
    assert "color" not in parsed.text and "Home | About" not in parsed.text
    assert [h.title for h in parsed.headings] == ["Logbook", "The great storm"]


def test_pdf_pages_labels_outline_and_empty_pages() -> None:
    parsed = parse(SAMPLES["pdf"][1](), "pdf", LIMITS)
    assert parsed.page_labels == ["iii", "iv", "v"] and parsed.pages_without_text == [3]
    assert [(h.level, h.title) for h in parsed.headings] == [(1, "Chapter One"), (1, "Chapter Two")]
    assert parsed.text[parsed.headings[1].offset :].startswith("Chapter Two")
    assert parsed.title == "Volcanic landforms"


def test_pdf_limits_and_damage_are_parse_errors() -> None:
    with pytest.raises(ParseError, match="3 pages; the limit is 2"):
        parse(SAMPLES["pdf"][1](), "pdf", Limits(max_pages=2))
    with pytest.raises(ParseError, match="the PDF cannot be read"):
        parse(b"%PDF-1.4\n" + b"\x00garbage" * 50, "pdf", LIMITS)
    with pytest.raises(ParseError, match="more than 100 characters"):
        parse(make_pdf([["word " * 40]]), "pdf", Limits(max_chars=100))


def test_an_encrypted_pdf_with_an_empty_password_opens() -> None:
    import io

    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(SAMPLES["pdf"][1]()))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    assert "Basalt columns" in parse(out.getvalue(), "pdf", LIMITS).text
