"""Fonts for the PDF case report: a Unicode TrueType font when the system has one, else PDF core fonts.

File names, folders and reviewer names can be anything (``Zelle ñ 細胞.bmp``).  PDF core fonts (Helvetica)
only know Latin-1, and fpdf2 refuses any other character, so a report must never be written with them
blindly: with core fonts every text goes through :meth:`Fonts.text`, which spells typographic characters in
ASCII and replaces the rest with ``?``.  No font is shipped with LeukoScan; common system fonts are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# (regular, bold, monospace) candidates, first complete set wins; monospace falls back to regular
_CANDIDATES: tuple[tuple[str, str, str], ...] = (
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    ),  # Debian, Ubuntu
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/dejavu-sans-mono-fonts/DejaVuSansMono.ttf",
    ),  # Fedora
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    ),  # Arch
    (
        os.path.expandvars(r"%WINDIR%\Fonts\arial.ttf"),
        os.path.expandvars(r"%WINDIR%\Fonts\arialbd.ttf"),
        os.path.expandvars(r"%WINDIR%\Fonts\consola.ttf"),
    ),
    (
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial Bold.ttf",
        "/System/Library/Fonts/Supplemental/Courier New.ttf",
    ),
)
_ASCII = str.maketrans(
    {
        "–": "-",
        "—": "-",
        "→": "->",
        "…": "...",
        "≥": ">=",
        "≤": "<=",
        "’": "'",
        "“": '"',
        "”": '"',
        "\u2009": " ",
        "\u202f": " ",
    }
)


@dataclass(frozen=True)
class Fonts:
    sans: str
    mono: str
    unicode: bool

    def text(self, s: object) -> str:
        """``s`` as the chosen font can write it."""
        s = str(s)
        if self.unicode:
            return s
        return s.translate(_ASCII).encode("latin-1", "replace").decode("latin-1")


def find_unicode_fonts(candidates=_CANDIDATES) -> tuple[Path, Path, Path] | None:
    for regular, bold, mono in candidates:
        r, b, m = Path(regular), Path(bold), Path(mono)
        if r.is_file() and b.is_file():
            return r, b, (m if m.is_file() else r)
    return None


def install_fonts(pdf, found: tuple[Path, Path, Path] | None = None, *, search: bool = True) -> Fonts:
    """Register the fonts on ``pdf`` (an ``fpdf.FPDF``) and say which to use."""
    found = found or (find_unicode_fonts() if search else None)
    if found is None:
        return Fonts("helvetica", "courier", unicode=False)
    regular, bold, mono = found
    pdf.add_font("ls-sans", "", str(regular))
    pdf.add_font("ls-sans", "B", str(bold))
    pdf.add_font("ls-mono", "", str(mono))
    return Fonts("ls-sans", "ls-mono", unicode=True)
