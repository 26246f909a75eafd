"""Review safety in the window: a not-a-cell image is excluded (not counted as a blast), a reviewer excludes
with X and a reason, the QC reason is where the technician looks, and sign-off waits for every ALL call."""

from __future__ import annotations

import shutil

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from PIL import Image
from PySide6.QtCore import Qt

from gui.cells import COL, FILTERS
from gui.document import Call
from gui.prompts import Prompts
from gui.review_command import Accept, Exclude, SetLabel


def _case_with_white_frame(cells_dir, tmp_path):
    case = tmp_path / "case"
    shutil.copytree(cells_dir, case)
    Image.new("RGB", (450, 450), (255, 255, 255)).save(case / "white.png")
    return case


def test_a_white_frame_is_excluded_and_shown_as_qc_failed(qtbot, make_window, cells_dir, tmp_path):
    """Before: the white frame was called ALL 1.00 and counted in % blasts in the window."""
    w = make_window()
    open_and_classify(qtbot, w, [_case_with_white_frame(cells_dir, tmp_path)])
    white = next(c for c in w.cell_model.cells if c.file == "white.png")
    assert white.qc and white.excluded
    qtbot.waitUntil(lambda: w.side.summary.counts[0].excluded == 1, timeout=5_000)
    cc = w.side.summary.counts[0]
    assert cc.all + cc.hem == len(w.cell_model.cells) - 1  # % blasts counts the real cells only
    assert w.side.summary.item(0, w.side.summary.columnCount() - 2).text() == "1"
    assert "failed the quality check" in w.side.summary.item(0, w.side.summary.columnCount() - 2).toolTip()
    # where the technician looks: the table's QC column, the Show filter, the preview, the tooltip
    row = w.cell_model.row_of(white.key) if hasattr(w.cell_model, "row_of") else w.cell_model.cells.index(white)
    assert w.cell_model.index(row, COL["QC"]).data() == white.qc
    assert "qc" in FILTERS and w.filters.filter_combo.findData("qc") >= 0
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("qc"))
    assert w.browser.proxy.rowCount() == 1
    w.browser.select_row(0)
    assert "QC failed" in w.preview.details.text() and "Excluded from % blasts" in w.preview.details.text()
    # a reviewer who says it is a cell brings it back into the count
    assert w.reviews.apply(SetLabel(Call.HEM)) == 1
    qtbot.waitUntil(lambda: w.side.summary.counts[0].excluded == 0, timeout=5_000)


def test_x_excludes_with_a_reason_and_ctrl_z_brings_it_back(qtbot, make_window, cells_dir, monkeypatch):
    monkeypatch.setattr(Prompts, "ask_exclusion_reason", lambda self, n: "duplicate")
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    cell = w.browser.current_cell()
    w.browser.gallery.setFocus()
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_X)
    assert cell.review is not None and cell.review.label == "EXCLUDED: duplicate" and cell.excluded
    qtbot.waitUntil(lambda: w.side.summary.counts[0].excluded == 1, timeout=5_000)
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert cell.review is None and not cell.excluded
    # no reason, no exclusion
    monkeypatch.setattr(Prompts, "ask_exclusion_reason", lambda self, n: "")
    w.browser.select_row(0)
    assert w.reviews.apply(Exclude()) == 0 and w.browser.current_cell().review is None


def test_sign_off_says_what_is_left_and_offers_the_walk(qtbot, make_window, cells_dir):
    """Before: a case could be signed off while confident ALL calls had never been looked at."""
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    assert any(c.blast_unconfirmed for c in w.cell_model.cells)
    w.browser.select_row(0)
    assert not w.case_actions.sign_off()
    title, text = w.prompts.messages[-1]
    n = sum(c.blast_unconfirmed and not c.review_open for c in w.cell_model.cells)
    assert title == "Cannot sign off yet" and f"{n} ALL call" in text
    box = next(
        b for b in w.findChildren(type(w.prompts.show_message("x", "y"))) if b.windowTitle() == "Cannot sign off yet"
    )
    walk = next(b for b in box.buttons() if b.text().startswith("Walk them"))
    walk.click()
    assert w.acts["flagged"].isChecked() and w.browser.current_cell().left_before_signoff


def test_review_flagged_mode_with_the_review_open_filter_skips_no_cell(qtbot, make_window, cells_dir):
    """Before: with the "Needs review" filter on, labelling the first tile selected the third (the labelled
    cell left the view, the rows moved up, and the walk stepped on from the moved row)."""
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("left_before_signoff"))
    n = w.browser.proxy.rowCount()
    assert n >= 3
    order = [w.browser.proxy.cell_at(r) for r in range(n)]
    w.acts["flagged"].setChecked(True)
    w.browser.select_row(0)
    seen = []
    for _ in range(n):
        cur = w.browser.current_cell()
        if cur is None or not cur.left_before_signoff:
            break
        seen.append(cur)
        w.reviews.apply(Accept())
    assert seen == order  # every cell in view order, none skipped


def test_a_signed_off_case_disables_the_label_buttons(qtbot, make_window, cells_dir, monkeypatch):
    from gui.case_actions import CaseActions

    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("", True))
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    for c in list(w.cell_model.cells):
        if c.left_before_signoff:
            w.browser.select_row(w.browser.proxy.proxy_row_of(c.key))
            w.reviews.apply(Accept())
    w.browser.select_row(0)
    assert w.preview.btn_all.isEnabled()
    w.doc.set_sample_id(next(iter(w.doc.cases.values())), "BM-1")
    assert w.case_actions.sign_off()
    w.browser.select_row(1)
    assert not w.preview.btn_all.isEnabled() and not w.preview.btn_exclude.isEnabled()
    assert "signed off" in w.preview.btn_hem.toolTip()


def test_label_keys_act_only_on_the_cell_views(qtbot, make_window, cells_dir):
    """Before: the filter box shrank, a click where it had been landed on the gallery, and typing "white" there
    relabelled a cell HEM.  The box keeps its size, and the label keys act only while the gallery, table or
    preview has the focus; the status bar says whether they do."""
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    cell = w.browser.current_cell()
    width = w.filters.search.width()
    w.filters.search.setFocus()
    qtbot.waitUntil(lambda: w.filters.search.hasFocus())
    qtbot.keyClicks(w.filters.search, "white")
    assert cell.review is None and w.filters.search.text() == "white"
    assert w.keys_label.text().startswith("Label keys off")
    w.filters.search.clear()
    w.browser.select_row(0)
    assert w.filters.search.width() == width  # the box never moves from under the mouse
    w.browser.gallery.setFocus()
    qtbot.waitUntil(lambda: w.browser.gallery.hasFocus())
    assert w.keys_label.text() == "Label keys on"
    w.filters.search.parent().setFocus()  # focus on the filter bar itself (not a text box): still no label
    qtbot.keyClick(w.filters.search.parent(), Qt.Key.Key_H)
    assert cell.review is None
    w.browser.gallery.setFocus()
    qtbot.waitUntil(lambda: w.browser.gallery.hasFocus())
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_H)
    assert cell.review is not None and cell.review.label == "HEM"


def test_a_broken_record_is_shown_with_a_banner_and_its_reports_refused(qtbot, make_window, cells_dir, tmp_path):
    """Case-record issue, item 3: the app must not present a record whose history was changed behind
    LeukoScan's back as valid."""
    import sqlite3

    from engine.case.store import CaseStore

    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    assert w.reviews.apply(SetLabel(Call.ALL)) == 1
    db = w.case_files.path
    w.doc.unexported = False
    w.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE reviews SET label='HEM' WHERE label='ALL'")  # the live table no longer follows the history
    con.commit()
    con.close()
    store = CaseStore.open(db)
    try:
        assert store.problem is not None
    finally:
        store.close()
    w2 = make_window()
    assert w2.case_files.restore(db)
    qtbot.waitUntil(lambda: w2.notices.record_banner.isVisible(), timeout=10_000)
    assert "broken" in w2.notices.record_banner.text()
    assert any(t == "Case record is broken" for t, _ in w2.prompts.messages)
    assert "broken" in w2.exports.why_not()
