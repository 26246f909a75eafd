"""The summary's Case column shows each case's sample id and folder in full (issue 26 item 11): with two or three
cases open it elided them to "…" / "c…8" and hid the ✓, so the wrong row could be signed."""

from __future__ import annotations

import shutil

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)

from gui.summary import SIGNED

NAMES = ("patient-2026-11-30-A", "patient-2026-11-30-B", "patient-2026-11-30-C")


def test_three_cases_each_show_sample_id_folder_and_tick_unelided(qtbot, make_window, cells_dir, tmp_path):
    folders = []
    for n in NAMES:
        shutil.copytree(cells_dir, tmp_path / n)
        folders.append(tmp_path / n)
    w = make_window()
    open_and_classify(qtbot, w, folders)
    cases = [w.doc.case_named(n) for n in NAMES]
    for i, case in enumerate(cases):
        w.doc.set_sample_id(case, f"BM-H5-00{i + 1}")
    signed = cases[1]
    cells = list(w.doc.cells_of(signed))
    w.doc.review(cells, "accept", "tech1")
    w.doc.sign_off(signed, "tech1")
    w.views.refresh_summary()
    table = w.side.summary
    fm = table.fontMetrics()
    for r, case in enumerate(cases):
        it = table.item(r, 0)
        assert case.sample_id in it.text() and case.name in it.text()
        assert it.text().startswith(SIGNED) == (case is signed)
        # the column is as wide as the text: nothing is elided, the ✓ included
        assert table.columnWidth(0) >= fm.horizontalAdvance(it.text())
        assert case.root in it.toolTip() and case.sample_id in it.toolTip()
