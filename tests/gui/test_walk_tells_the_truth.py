"""The walk and the sign-off refusal say the same thing (issue 26 item 9): with Show = "Review open" the walk went
on saying "it can be signed off" while ALL calls were left, "Walk them now" did nothing, and the refusal counted 4
ALL calls where the summary line said 15."""

from __future__ import annotations

import re

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from gui.review_command import Accept


def _walk_review_open_only(qtbot, w):
    """Show = "Review open", F, Space on every cell the walk selects; the status lines it showed."""
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("review_open"))
    w.browser.select_row(0)
    w.browser.gallery.setFocus()
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_F)
    said = []
    w.statusBar().messageChanged.connect(said.append)
    for _ in range(len(w.cell_model.cells)):
        cur = w.browser.current_cell()
        if cur is None or not cur.left_before_signoff:
            break
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Space)
    return said


def _scenario_ok(w):
    cells = w.cell_model.cells
    return any(c.review_open for c in cells) and any(c.blast_unconfirmed and not c.review_open for c in cells)


def test_the_walk_never_says_signable_while_all_calls_are_left_and_walks_them_too(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    assert _scenario_ok(w), "the test needs flagged cells and unflagged ALL calls"
    case = next(iter(w.doc.cases.values()))
    w.doc.set_sample_id(case, "BM-H5-001")  # sign-off needs one
    said = _walk_review_open_only(qtbot, w)
    for text in said:
        if "can be signed off" in text:
            assert w.doc.can_sign_off(case)[0], text
    # the walk went on past the filter: nothing is left, and it said so truthfully
    assert not any(c.left_before_signoff for c in w.cell_model.cells)
    assert any("can be signed off" in t for t in said), said
    assert w.filters.filter_combo.currentData() == "left_before_signoff"


def test_walk_them_now_walks_the_cells_the_filter_hides(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    assert _scenario_ok(w)
    # Show = "Review open", the flagged ones reviewed by hand (in the preview, one at a time), then sign off
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("review_open"))
    for _ in range(len(w.cell_model.cells)):
        if not w.browser.proxy.rowCount():
            break
        w.browser.select_row(0)
        w.reviews.apply(Accept())
    assert not w.browser.proxy.rowCount()
    assert not w.case_actions.sign_off()
    box = next(b for b in w.findChildren(QMessageBox) if b.windowTitle() == "Cannot sign off yet")
    next(b for b in box.buttons() if b.text().startswith("Walk them")).click()
    cur = w.browser.current_cell()
    assert cur is not None and cur.blast_unconfirmed


def test_the_refusal_and_the_summary_line_give_the_same_counts(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    assert _scenario_ok(w)
    w.browser.select_row(0)
    assert not w.case_actions.sign_off()
    _title, text = w.prompts.messages[-1]
    w.views.refresh_summary()
    line = w.side.flagged_label.text()
    refused_blasts = int(re.search(r"(\d+) ALL calls? (is|are) not confirmed", text).group(1))
    refused_open = int(re.search(r"(\d+) flagged cells? (is|are) not reviewed", text).group(1))
    done, total = map(int, re.search(r"(\d+) / (\d+) flagged cells reviewed", line).groups())
    line_blasts = int(re.search(r"(\d+) ALL calls?", line).group(1))
    assert (refused_blasts, refused_open) == (line_blasts, total - done)
