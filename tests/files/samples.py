"""Files of every supported format, made by the real libraries (or written out), for tests."""

from __future__ import annotations

import io
import zipfile

import docx
import pptx
from pptx.util import Inches

from tests.files.make_pdf import make_pdf

FACTS = {
    "pdf": "Basalt columns form when thick lava flows cool slowly and contract.",
    "docx": "The granary ledger records four hundred sacks of barley in March.",
    "pptx": "Quarterly revenue from the harbour ferries rose by nine percent.",
    "html": "The lighthouse keeper logged the storm surge at three metres.",
    "markdown": "Sourdough starter needs feeding twice a day in warm kitchens.",
    "text": "Señor Ibáñez repaired the clock tower in the spring of 1911.",
}


def pdf_sample() -> bytes:
    """Three pages: the fact on page 2, an empty page 3; an outline, printed labels iii-v."""
    return make_pdf(
        [
            ["Chapter One", "An introduction to volcanic landforms and their study."],
            ["Chapter Two", FACTS["pdf"], "Columns are usually hexagonal."],
            [],
        ],
        glued=True,
        title="Volcanic landforms",
        outline=[("Chapter One", 0), ("Chapter Two", 1)],
        labels=[(0, "r", 3)],
    )


def docx_sample() -> bytes:
    d = docx.Document()
    d.add_heading("Estate records", level=1)
    d.add_paragraph("An overview of the estate's accounts.")
    d.add_heading("Granary", level=2)
    d.add_paragraph(FACTS["docx"])
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Grain", "Sacks"
    table.cell(1, 0).text, table.cell(1, 1).text = "Barley", "400"
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def pptx_sample() -> bytes:
    deck = pptx.Presentation()
    for title, body, notes in (
        ("Harbour report", "Ferries, tugs and moorings.", "Welcome everyone."),
        ("Ferries", FACTS["pptx"], "Mention the new timetable."),
    ):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        slide.notes_slide.notes_text_frame.text = notes
    extra = deck.slides.add_slide(deck.slide_layouts[6])  # blank
    extra.shapes.add_textbox(
        Inches(1), Inches(1), Inches(4), Inches(1)
    ).text_frame.text = "Questions and answers."
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def html_sample() -> bytes:
    return (
        "<!doctype html><html><head><title>Coastal logbook</title>"
        "<style>p { color: red }</style><script>var secret = 'do not index';</script></head>"
        "<body><nav>Home | About | Contact</nav><main><h1>Logbook</h1><p>Entries by date.</p>"
        f"<h2>The great storm</h2><p>{FACTS['html']}</p></main>"
        "<footer>Copyright footer text</footer></body></html>"
    ).encode()


def markdown_sample() -> bytes:
    return (
        "# Baking notes\n\nA few notes from the bakery.\n\n## Starters\n\n"
        f"{FACTS['markdown']}\n\n```\n# not a heading\n```\n"
    ).encode()


def text_sample() -> bytes:
    return ("Town history\n\n" + FACTS["text"] + "\n").encode("utf-16")  # with a BOM


def zip_bomb() -> bytes:
    """A real DOCX with one more member that unpacks to 300 MB of zeros (~300 kB packed)."""
    out = io.BytesIO(docx_sample())
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as z, z.open("word/media/x.bin", "w") as f:
        chunk = bytes(1 << 20)
        for _ in range(300):
            f.write(chunk)
    return out.getvalue()


SAMPLES = {
    "pdf": ("landforms.pdf", pdf_sample),
    "docx": ("estate.docx", docx_sample),
    "pptx": ("harbour.pptx", pptx_sample),
    "html": ("logbook.html", html_sample),
    "markdown": ("baking.md", markdown_sample),
    "text": ("history.txt", text_sample),
}
