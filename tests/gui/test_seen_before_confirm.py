"""A blast call is confirmed only when a person saw it (issue 26 item 8): a bulk accept confirms the flagged cells
and ALL calls on the gallery page on screen (tiles at a readable size), in the preview or in the walk, never the
ones scrolled past, shown as tiny tiles or only as table rows; the review records where each was seen."""

from __future__ import annotations

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from PySide6.QtCore import Qt

from gui.browser import READABLE_TILE_PX
from gui.case_actions import CaseActions
from gui.prompts import Prompts


def _bulk_accept_everything(qtbot, w, view):
    """Ctrl+A, Space in ``view``, "Accept N cells" answered yes."""
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Space)


def test_ctrl_a_space_on_tiny_tiles_confirms_no_unseen_blast_and_sign_off_stays_refused(
    qtbot, make_window, cells_dir, monkeypatch
):
    """Before: Ctrl+A, Space, "Accept 8 cells", Ctrl+Enter signed the case off with every ALL call confirmed."""
    monkeypatch.setattr(Prompts, "confirm_bulk_accept", lambda self, n, left: True)
    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("", True))
    w = make_window(thumb_size=64)  # below READABLE_TILE_PX: the tiles cannot be read
    open_and_classify(qtbot, w, [cells_dir])
    cells = list(w.cell_model.cells)
    current = w.browser.current_cell()
    unseen_blasts = [c for c in cells if c.blast_unconfirmed and c is not current]
    assert unseen_blasts, "the test needs ALL calls besides the one in the preview"
    _bulk_accept_everything(qtbot, w, w.browser.gallery)
    assert all(c.review is None and c.blast_unconfirmed for c in unseen_blasts)
    assert "never shown at a readable size" in w.statusBar().currentMessage()
    # the cells nobody has to look at were accepted
    assert all(c.review is not None for c in cells if not c.left_before_signoff and c is not current)
    w.doc.set_sample_id(w.doc.cases[str(cells_dir)], "BM-H5-001")  # only the unseen blasts stand in the way
    w.browser.select_row(0)
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert w.doc.cases[str(cells_dir)].signoff is None
    assert w.prompts.messages[-1][0] == "Cannot sign off yet"


def test_a_bulk_accept_in_the_table_confirms_only_cells_seen_before(qtbot, make_window, cells_dir, monkeypatch):
    monkeypatch.setattr(Prompts, "confirm_bulk_accept", lambda self, n, left: True)
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.setCurrentWidget(w.browser.table)
    seen = w.browser.current_cell()  # in the preview
    left = [c for c in w.cell_model.cells if c.left_before_signoff and c is not seen]
    assert left
    _bulk_accept_everything(qtbot, w, w.browser.table)
    assert all(c.review is None for c in left)


def test_a_gallery_page_at_a_readable_size_is_accepted_and_the_review_says_where_it_was_seen(
    qtbot, make_window, cells_dir, monkeypatch
):
    monkeypatch.setattr(Prompts, "confirm_bulk_accept", lambda self, n, left: True)
    w = make_window(thumb_size=READABLE_TILE_PX + 16)
    open_and_classify(qtbot, w, [cells_dir])
    cells = list(w.cell_model.cells)
    w.browser.setCurrentWidget(w.browser.gallery)
    qtbot.waitUntil(lambda: all(w.thumbs.has(c.key) for c in cells), timeout=20_000)
    on_page = w.browser.cells_on_page(cells)
    assert len(on_page) == len(cells), "the window shows every tile of the test case"
    _bulk_accept_everything(qtbot, w, w.browser.gallery)
    assert all(c.review is not None for c in cells)
    current = w.browser.current_cell()
    assert {c.review.shown_in for c in cells if c is not current} == {"gallery page"}
    assert current.review.shown_in in ("preview", "gallery page")


def test_only_the_page_on_screen_is_accepted_not_the_cells_scrolled_past(qtbot, make_window, cells_dir, monkeypatch):
    monkeypatch.setattr(Prompts, "confirm_bulk_accept", lambda self, n, left: True)
    w = make_window(thumb_size=256)
    open_and_classify(qtbot, w, [cells_dir])
    w.resize(700, 500)  # one or two tiles per page
    cells = list(w.cell_model.cells)
    qtbot.waitUntil(lambda: all(w.thumbs.has(c.key) for c in cells), timeout=20_000)
    w.browser.gallery.scrollToTop()
    on_page = w.browser.cells_on_page(cells)
    assert 0 < len(on_page) < len(cells)
    _bulk_accept_everything(qtbot, w, w.browser.gallery)
    current = w.browser.current_cell()
    off_page_left = [c for c in cells if c not in on_page and c is not current and c.review is None]
    assert all(c.left_before_signoff for c in off_page_left)
    assert not any(c.review is None for c in on_page)


def test_the_walk_records_that_the_cell_was_seen_in_the_walk(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.start_walk()
    cur = w.browser.current_cell()
    assert cur.left_before_signoff
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Space)
    assert cur.review is not None and cur.review.shown_in == "walk"
