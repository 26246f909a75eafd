"""The case report's PDF document (fpdf2): page, fonts, footer and layout helpers, shared by
:mod:`.pdf_report` (the sections) and :mod:`.pdf_cells` (the thumbnails), which both stand on it."""

from __future__ import annotations

from fpdf import FPDF

from . import __version__
from .pdf_fonts import install_fonts

DARK, RED = (90, 90, 90), (200, 30, 30)  # the report's text grey and warning red
_MARGIN = 12.0


class ReportDoc(FPDF):
    """An A4 page of the case report: its fonts, footer and the layout helpers every section uses."""

    def __init__(self, generated: str, fonts_found=None, search_fonts: bool = True):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.generated = generated
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, margin=16)
        self.ls_fonts = install_fonts(self, fonts_found, search=search_fonts)
        self.set_title("LeukoScan case report")
        self.set_creator(f"LeukoScan {__version__}")

    def t(self, s: object) -> str:
        return self.ls_fonts.text(s)

    def font(self, size: float, bold: bool = False, mono: bool = False) -> None:
        self.set_font(self.ls_fonts.mono if mono else self.ls_fonts.sans, "B" if bold and not mono else "", size)

    def footer(self) -> None:
        self.set_y(-11)
        self.font(7.5)
        self.set_text_color(*DARK)
        self.cell(
            self.epw * 0.75,
            5,
            self.t(f"LeukoScan {__version__} (research tool, not a diagnostic device) - generated {self.generated}"),
        )
        self.cell(self.epw * 0.25, 5, f"page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def fits(self, height: float) -> bool:
        return self.get_y() + height <= self.page_break_trigger

    def need(self, height: float) -> None:
        """A new page unless ``height`` mm still fit on this one (keeps a block together)."""
        if not self.fits(height):
            self.add_page()

    def heading(self, text: str, keep: float = 8) -> None:
        """A section title, on a new page unless ``keep`` mm of its content fit below it."""
        self.need(8 + keep)
        self.ln(2)
        self.font(11, bold=True)
        self.multi_cell(0, 6, self.t(text), new_x="LMARGIN", new_y="NEXT")  # a long title wraps, never runs off
        self.font(9)

    def fit(self, text: str, width: float) -> str:
        """``text`` shortened with "..." in the middle to fit ``width`` mm in the current font."""
        text = self.t(text)
        if self.get_string_width(text) <= width:
            return text
        keep = len(text)
        while keep > 4:
            keep -= 1
            short = text[: keep // 2] + "..." + text[len(text) - keep // 2 :]
            if self.get_string_width(short) <= width:
                return short
        return text[:3] + "..."
