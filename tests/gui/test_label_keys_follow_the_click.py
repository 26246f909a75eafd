"""A click on the summary table or the P(ALL) chart takes the focus from the cells (issue 26 item 10): before, H and
A then still relabelled the selected tile while the status bar said "Label keys on"."""

from __future__ import annotations

import pytest
from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from gui.keys_indicator import OFF, ON


@pytest.mark.parametrize("where", ["summary", "histogram"])
def test_h_and_a_after_a_click_on_the_summary_side_label_nothing_and_the_indicator_says_off(
    qtbot, make_window, cells_dir, where
):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.activateWindow()
    w.browser.select_row(0)
    w.browser.gallery.setFocus()
    qtbot.waitUntil(lambda: w.browser.gallery.hasFocus())
    assert w.keys_label.text() == ON
    target = w.side.summary.viewport() if where == "summary" else w.side.histogram
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=target.rect().center())
    qtbot.waitUntil(lambda: not w.browser.gallery.hasFocus())
    assert w.keys_label.text() == OFF
    cell = w.browser.current_cell()
    for key in (Qt.Key.Key_H, Qt.Key.Key_A, Qt.Key.Key_Space):
        qtbot.keyClick(QApplication.focusWidget() or w, key)
    assert cell.review is None
    # a click back on a tile turns them on again
    tile = w.browser.gallery.visualRect(w.browser.proxy.index(0, 0)).center()
    qtbot.mouseClick(w.browser.gallery.viewport(), Qt.MouseButton.LeftButton, pos=tile)
    qtbot.waitUntil(lambda: w.keys_label.text() == ON)
