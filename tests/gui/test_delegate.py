"""The gallery tile: a cell whose image failed the engine's quality check carries a "QC" mark."""

from __future__ import annotations

from pathlib import Path

from gui_helpers import RUN_TIMEOUT_MS  # noqa: F401  (sets QT_QPA_PLATFORM before Qt is used)
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication

from engine.pipeline import CellResult
from gui.cells import Cell
from gui.delegate import QC_COLOR, TileDelegate, qc_reason


def _cell(qc: str = "") -> Cell:
    path = Path("/case/c1.bmp")
    c = Cell(path, Path("/case"), ".", "case")
    c.result = CellResult(
        index=0,
        path=path,
        root=Path("/case"),
        folder=".",
        file="c1.bmp",
        sha256="ab" * 32,
        status="ok",
        error="",
        p_all=0.12,
        qc=qc,
    )
    c.prediction, c.flagged = "HEM", bool(qc)
    return c


def _qc_pixels(cell: Cell) -> int:
    d = TileDelegate(proxy=None, thumbs=None, thumb_size=96)
    img = QImage(120, 140, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    d._render(p, QRect(0, 0, 120, 140), cell, False, None, QApplication.palette())
    p.end()
    target = QC_COLOR.rgb()
    return sum(img.pixel(x, y) == target for x in range(img.width()) for y in range(40))


def test_qc_mark_only_on_cells_that_failed_the_check(qapp):
    failed = _cell("uniform image (no detail: not a cell)")
    assert qc_reason(failed) and not qc_reason(_cell())
    assert _qc_pixels(failed) > 50
    assert _qc_pixels(_cell()) == 0
    pending = Cell(Path("/case/c2.bmp"), Path("/case"), ".", "case")
    assert qc_reason(pending) == ""
