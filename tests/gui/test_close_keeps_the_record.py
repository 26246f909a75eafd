"""File ▸ Close all cases keeps the record (issue 26 item 1): before, Ctrl+W, "Close without exporting" left 0 rows
in cases, cells, reviews and signoffs, and opening the folder again classified it from scratch."""

from __future__ import annotations

from pathlib import Path

from gui_helpers import make_window, open_and_classify, stored  # noqa: F401  (fixture + helper)
from PySide6.QtCore import Qt

from gui.case_actions import CaseActions
from gui.prompts import CloseChoice, Prompts


def _sign_off(qtbot, w, sample_id):
    case = next(iter(w.doc.cases.values()))
    w.doc.set_sample_id(case, sample_id)
    w.start_walk()
    for _ in range(len(w.cell_model.cells)):
        cur = w.browser.current_cell()
        if cur is None or not cur.left_before_signoff:
            break
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Space)
    assert w.case_actions.sign_off()
    return case


def test_close_all_without_exporting_keeps_the_signed_off_record_and_the_folder_opens_it_again(
    qtbot, make_window, cells_dir, monkeypatch
):
    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("", True))
    asked = []
    monkeypatch.setattr(Prompts, "ask_close", lambda self, n, at="": asked.append(n) or CloseChoice.DISCARD)
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    n_cells = len(w.cell_model.cells)
    _sign_off(qtbot, w, "BM-H5-001")
    n_reviews = len(w.doc.reviews)
    assert w.doc.unexported
    w.browser.gallery.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)  # File ▸ Close all cases
    assert asked and not w.doc.cells
    kept = Path(w.settings.recent_stores[0])
    assert kept.is_file() and kept != w.case_files.path
    doc = stored(kept)
    assert len(doc.cells) == n_cells and len(doc.reviews) == n_reviews
    assert next(iter(doc.cases.values())).signoff is not None
    # opening the folder again opens its record: nothing is classified again, the sign-off is back
    w.opener.open_paths([str(cells_dir)])
    qtbot.waitUntil(lambda: len(w.doc.cells) == n_cells, timeout=20_000)
    assert w.case_files.path == kept
    case = next(iter(w.doc.cases.values()))
    assert case.signoff is not None and case.sample_id == "BM-H5-001"
    assert len(w.doc.reviews) == n_reviews and not w.doc.unclassified()
    assert not w.runs.running


def test_the_close_question_says_closing_never_erases_the_record(qtbot, make_window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    texts = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: texts.append(self.text()) or 0)
    w = make_window()
    w.prompts.ask_close(3)
    assert "never erases" in texts[0] and "either way" not in texts[0]


def test_a_stop_signal_closes_without_asking_and_the_reviews_are_in_the_store(qtbot, make_window, cells_dir):
    """close_unasked (SIGTERM, gui.app) never asks "export first?" (nobody is there to answer) and the window's close
    asks when a person closes it: both through the window's own methods, no flag set on the runs from outside."""
    from gui.review_command import Accept

    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    qtbot.waitUntil(lambda: w.doc.unseen([w.browser.current_cell()]) == [], timeout=10_000)
    assert w.reviews.apply(Accept()) == 1 and w.doc.unexported
    asked = []
    w.prompts.ask_close = lambda n, at="": asked.append(n) or CloseChoice.CANCEL
    assert not w.close() and asked == [1] and w.isVisible()  # a person is asked (and keeps the window)
    path = w.case_files.path
    w.close_unasked()
    assert asked == [1] and not w.isVisible() and w.runs.closed
    assert len(stored(path).reviews) == 1
