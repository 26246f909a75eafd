"""The PDF case report's cell pictures: one thumbnail per cell with a two-line caption, or a dashed box that
says why its image cannot be shown (:mod:`engine.pdf_report` lays out the groups)."""

from __future__ import annotations

from pathlib import Path

from .pdf_doc import DARK, RED, ReportDoc
from .preprocess import ImageDecodeError, open_rgb
from .report_row import ReportRow, fmt_p

THUMB_PX = 96  # thumbnails are downscaled to this many pixels a side before embedding
THUMB_CAP = 60  # per group and case; then "and N more" (not for the cells counted as ALL: every one is shown)
FRAME = (150, 150, 150)  # the thin frame around every thumbnail
_THUMB_MM, _THUMB_GAP, _CAPTION_MM = 21.0, 2.0, 6.5


def _thumbnail(path: str):
    """A ~96 px RGB thumbnail, or the reason it cannot be shown."""
    try:
        im = open_rgb(path)
    except ImageDecodeError as exc:
        return None, str(exc)
    except (OSError, ValueError, MemoryError) as exc:
        return None, str(exc) or type(exc).__name__
    im.thumbnail((THUMB_PX, THUMB_PX))
    return im, ""


def _caption(r: ReportRow) -> tuple[str, str]:
    """Two short lines under a thumbnail: the cell id (also in the CSV) and P(ALL); then the model's call,
    the final call and who confirmed it ("-" when nobody has)."""
    p = r.p_all
    cid = r.cell_id or r.result.file or Path(r.path).name
    first = f"{cid} P{float(fmt_p(p)):.2f}" if p is not None else cid  # rounded from the CSV's 4 decimals
    call, final = r.prediction or "?", r.final_label or r.reviewed_label or r.prediction
    who = (r.review.reviewer if r.review else "") or "-"
    return first, f"{call}>{final} {who}"


def cell_thumbnails(pdf: ReportDoc, title: str, rows: list[ReportRow], cap: int | None = THUMB_CAP) -> None:
    per_row = int((pdf.epw + _THUMB_GAP) // (_THUMB_MM + _THUMB_GAP))
    step_y = _THUMB_MM + _CAPTION_MM + 2
    pdf.heading(f"{title} ({len(rows)})", keep=step_y if rows else 5)
    if not rows:
        pdf.multi_cell(0, 5, "none", new_x="LMARGIN", new_y="NEXT")
        return
    shown = rows if cap is None else rows[:cap]
    for i, r in enumerate(shown):
        col = i % per_row
        if col == 0:
            if i:
                pdf.set_y(pdf.get_y() + step_y)
            pdf.need(step_y)
        x, y = pdf.l_margin + col * (_THUMB_MM + _THUMB_GAP), pdf.get_y()
        im, why = _thumbnail(r.path)
        if im is not None:
            scale = _THUMB_MM / max(im.size)
            w, h = im.size[0] * scale, im.size[1] * scale
            ix, iy = x + (_THUMB_MM - w) / 2, y + (_THUMB_MM - h) / 2
            pdf.image(im, ix, iy, w, h)
            pdf.set_draw_color(*FRAME)  # a thin frame: a white (not-a-cell) image stays visible on the white page
            lw = pdf.line_width
            pdf.set_line_width(0.15)
            pdf.rect(ix, iy, w, h)
            pdf.set_line_width(lw)
            pdf.set_draw_color(0, 0, 0)
        else:
            pdf.set_draw_color(*DARK)
            pdf.set_dash_pattern(dash=1, gap=1)
            pdf.rect(x, y, _THUMB_MM, _THUMB_MM)
            pdf.set_dash_pattern()
            pdf.set_draw_color(0, 0, 0)
            pdf.font(6)
            pdf.set_text_color(*RED)
            pdf.set_xy(x + 0.5, y + 6)
            pdf.multi_cell(_THUMB_MM - 1, 2.6, pdf.t(f"image not available: {why}"), align="C")
            pdf.set_text_color(0, 0, 0)
        pdf.font(5.5)
        first, second = _caption(r)
        pdf.text(x, y + _THUMB_MM + 2.4, pdf.fit(first, _THUMB_MM))
        flag = " QC" if r.qc else ""
        pdf.text(x, y + _THUMB_MM + 5, pdf.fit(second + flag, _THUMB_MM))
        pdf.set_y(y)
    pdf.set_xy(pdf.l_margin, pdf.get_y() + step_y)
    if len(rows) > len(shown):
        pdf.font(9, bold=True)
        pdf.cell(0, 5, f"and {len(rows) - len(shown)} more (see the CSV report)", new_x="LMARGIN", new_y="NEXT")
    pdf.font(9)
