"""The PDF says what the counts say and shows every cell readably (issue 26 item 13): "Cells flagged for review (8)"
stood against 18 flagged, the ALL heading ran off the page, and a white not-a-cell thumbnail was invisible."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pypdf import PdfReader

from engine.pdf_cells import FRAME, cell_thumbnails
from engine.pdf_doc import ReportDoc as _Doc
from engine.pdf_report import render_case_pdf
from engine.report_cases import cases_of
from engine.report_row import ReportRow


def _rows(tmp_path: Path) -> list[ReportRow]:
    """Six cells of one case, four flagged; two of the flagged ones overridden by the reviewer."""
    root = tmp_path / "case"
    root.mkdir()
    rows = []
    for i in range(6):
        path = root / f"c{i}.png"
        Image.new("RGB", (40, 40), (255, 255, 255) if i == 0 else (120, 20, 90)).save(path)
        flagged = i < 4
        over = i < 2
        rows.append(
            ReportRow.from_csv(
                {
                    "path": str(path),
                    "root": str(root),
                    "folder": ".",
                    "file": path.name,
                    "status": "ok",
                    "p_all": "0.55" if flagged else "0.95",
                    "prediction": "ALL",
                    "flagged": "true" if flagged else "false",
                    "reviewed_label": "HEM" if over else "",
                    "review_model_label": "ALL" if over else "",
                    "reviewer": "tech1" if over else "",
                    "model": "m",
                    "model_version": "1",
                    "threshold": "0.5",
                    "sha256": f"{i:064x}",
                }
            )
        )
    return rows


def test_the_flagged_heading_counts_every_flagged_cell_as_the_verdict_does(tmp_path):
    rows = _rows(tmp_path)
    (case,) = cases_of(rows)
    assert case.counts.flagged == 4 and len(case.flagged) == case.counts.flagged
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(_pdf(tmp_path, rows)).pages)
    assert "Cells flagged for review (reviewed or not) (4)" in text


def _pdf(tmp_path, rows):
    out = tmp_path / "r.pdf"
    out.write_bytes(render_case_pdf(rows, record_known=False))
    return out


def test_a_long_heading_wraps_inside_the_page():
    pdf = _Doc("now")  # the report's own fonts (DejaVu where found: wider than the core font)
    pdf.add_page()
    title = "Every cell counted as ALL (caption: cell id, P(ALL); model call > final call, who confirmed) (123)"
    pdf.font(11, bold=True)
    if pdf.get_string_width(pdf.t(title)) <= pdf.epw:
        title += " and some more words that make it longer than one line of the page"
    assert pdf.get_string_width(pdf.t(title)) > pdf.epw  # it would run off the page on one line
    y = pdf.get_y()
    pdf.heading(title)
    assert pdf.get_y() - y >= 2 + 2 * 6  # two lines


def test_every_thumbnail_has_a_thin_frame_so_a_white_image_shows_on_the_white_page(tmp_path, monkeypatch):
    rows = _rows(tmp_path)[:3]
    pdf = _Doc("now", search_fonts=False)
    pdf.add_page()
    framed = []
    real_rect = pdf.rect

    def rect(x, y, w, h, *a, **k):
        framed.append((pdf.draw_color, round(w, 2), round(h, 2)))
        return real_rect(x, y, w, h, *a, **k)

    monkeypatch.setattr(pdf, "rect", rect)
    cell_thumbnails(pdf, "Cells", rows)
    assert len(framed) == 3 and all(w > 0 and h > 0 for _c, w, h in framed)
    grey = _Doc("now", search_fonts=False)
    grey.set_draw_color(*FRAME)
    assert {c for c, _w, _h in framed} == {grey.draw_color}
