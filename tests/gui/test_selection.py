"""The gallery's selection is neutral: a light ring and a lightened grey tile, never the platform's
highlight (a blue that read as HEM) nor any class, review, QC or error colour."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette

from gui.cells import Cell
from gui.delegate import QC_COLOR, TileDelegate
from gui.style import ALL_COLOR, ERROR_COLOR, HEM_COLOR, REVIEW_COLOR, REVIEWED_COLOR, SELECTION_COLOR


def _all_cell() -> Cell:
    c = Cell(Path("/case/c1.bmp"), Path("/case"), ".", "case")
    c.result = SimpleNamespace(
        status="ok", error="", p_all=0.91, qc="", sha256="ab" * 32, member_p={}, members_disagree=False
    )
    c.prediction, c.threshold = "ALL", 0.5
    return c


def _tile(selected: bool) -> QImage:
    pal = QPalette()
    pal.setColor(QPalette.ColorRole.Highlight, HEM_COLOR)  # a platform whose highlight is the HEM blue
    img = QImage(120, 140, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    TileDelegate(proxy=None, thumbs=None, thumb_size=96)._render(
        p, QRect(0, 0, 120, 140), _all_cell(), selected, None, pal
    )
    p.end()
    return img


def _dist(a: QColor, b: QColor) -> float:
    return ((a.red() - b.red()) ** 2 + (a.green() - b.green()) ** 2 + (a.blue() - b.blue()) ** 2) ** 0.5


def test_selected_tile_has_no_hem_blue_and_a_neutral_ring(qapp):
    sel, plain = _tile(True), _tile(False)
    bluish = [
        (x, y) for x in range(sel.width()) for y in range(sel.height()) if _dist(sel.pixelColor(x, y), HEM_COLOR) < 40
    ]
    assert bluish == []  # an ALL tile, selected, shows no HEM-like blue anywhere
    ring = sel.pixelColor(60, 0)  # top edge, middle: outside the class frame
    assert _dist(ring, SELECTION_COLOR) < 30 and ring.alpha() > 200
    assert plain.pixelColor(60, 0).alpha() == 0  # no ring when not selected
    bg_sel, bg_plain = sel.pixelColor(8, 60), plain.pixelColor(8, 60)  # between frame and image
    assert max(bg_sel.red(), bg_sel.green(), bg_sel.blue()) - min(bg_sel.red(), bg_sel.green(), bg_sel.blue()) < 14
    assert bg_sel.lightness() > bg_plain.lightness() + 15  # visibly lightened, still grey


def test_selection_colour_is_distinct_from_every_meaningful_colour():
    for c in (ALL_COLOR, HEM_COLOR, REVIEW_COLOR, REVIEWED_COLOR, ERROR_COLOR, QC_COLOR):
        assert _dist(SELECTION_COLOR, c) > 120, c.name()
    assert SELECTION_COLOR.hsvSaturation() < 20  # neutral: carries no hue


def test_table_selection_is_neutral_and_the_error_column_is_in_view(qtbot, make_window, cells_dir):
    """Selected rows are not drawn in the HEM blue, and the last column (Error) fits the default window."""
    from PySide6.QtGui import QColor, QPalette

    from gui.style import TABLE_SELECTION

    w = make_window()
    w.resize(1480, 920)
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.setCurrentWidget(w.browser.table)
    qtbot.waitUntil(w.browser.table.isVisible, timeout=5_000)
    hl = w.browser.table.palette().color(QPalette.ColorGroup.Active, QPalette.ColorRole.Highlight)
    assert hl == QColor(TABLE_SELECTION) and hl != QColor(HEM_COLOR)
    h = w.browser.table.horizontalHeader()
    last = w.cell_model.columnCount() - 1
    assert (
        h.sectionViewportPosition(last) + 40 <= w.browser.table.viewport().width()
    )  # Error starts well inside the view
