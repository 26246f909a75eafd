"""The preview says what a review did (issue 26 item 13): an exclusion read "(accepted)"."""

from __future__ import annotations

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)

from gui.prompts import Prompts
from gui.review_command import Accept, Exclude


def test_an_excluded_cell_reads_excluded_not_accepted(qtbot, make_window, cells_dir, monkeypatch):
    monkeypatch.setattr(Prompts, "ask_exclusion_reason", lambda self, n: "artefact")
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    cell = w.browser.current_cell()
    assert w.reviews.apply(Exclude()) == 1
    w.browser.select_key(cell.key)  # the review moved on to the next cell
    assert w.preview.cell is cell and cell.excluded
    text = w.preview.details.text()
    assert "(excluded)" in text and "(accepted)" not in text
    w.browser.select_row(1)
    other = w.browser.current_cell()
    w.reviews.apply(Accept())
    w.browser.select_key(other.key)
    assert "(accepted)" in w.preview.details.text()
