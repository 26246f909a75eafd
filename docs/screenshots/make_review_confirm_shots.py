"""The screenshots of issue 26's review views (a confirmation that means a person looked; one patient per output):
``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_review_confirm_shots.py``.

A healthy donor's case of 60 real HEM cells (``../shared/data``), classified with the installed default model, then
two more cases; settings and case records go to a temporary folder.  Writes ``19-bulk-accept-page.png`` (Ctrl+A,
Space: only the page on screen is confirmed), ``20-walk-past-the-filter.png``, ``21-signoff-sample-id.png``,
``22-summary-three-cases.png``, ``23-pdf-which-case.png``, ``24-label-keys-off.png`` and ``25-close-keeps-record.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs" / "screenshots"))
sys.path.insert(0, str(REPO))
TMP = Path(tempfile.mkdtemp(prefix="leukoscan-confirm-shots-"))
os.environ["LEUKOSCAN_DATA_DIR"] = str(TMP / "user")

from make_screenshots import SHARED, pump, save, wait
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit


def folder(name: str, kind: str, n: int, offset: int = 0) -> Path:
    files = sorted(SHARED.glob(f"fold_1/{kind}/*.webp"))[offset:]
    pick = files[:: max(1, len(files) // n)][:n]
    d = TMP / name
    d.mkdir(parents=True)
    for i, f in enumerate(sorted(pick, key=lambda p: zlib.crc32(p.name.encode()))):
        (d / f"cell_{i + 1:03d}{f.suffix}").symlink_to(f)
    return d


def on_modal(app, name: str, answer) -> None:
    """When the next modal dialog is up: save it as ``name``, then ``answer(dialog)``."""

    def grab() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(100, grab)
            return
        pump(app, 0.4)
        save(box, name)
        answer(box)

    QTimer.singleShot(300, grab)


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_runtime
    from gui.mainwindow import MainWindow
    from gui.service import EngineService
    from gui.settings import Settings

    configure_runtime()
    s = Settings()
    s.reviewer = "J. Rivera"
    s.thumb_size = 112
    w = MainWindow(EngineService(None), s, check_orphans=False)
    w.resize(1480, 920)
    w.show()
    wait(app, lambda: w.model_chooser.classifier is not None)
    donor = folder("Donor H5", "hem", 60)
    w.opener.open_paths([donor])
    wait(
        app, lambda: not w.runs.running and len(w.cell_model.cells) == 60 and all(c.result for c in w.cell_model.cells)
    )
    w.activateWindow()
    g = w.browser.gallery
    g.setFocus()
    wait(app, lambda: len(w.browser.cells_on_page(list(w.cell_model.cells))) >= 20, timeout=120)  # the page drawn
    pump(app, 0.5)

    # item 8: Ctrl+A, Space confirms the page on screen only
    w.prompts.confirm_bulk_accept = lambda n, left: True
    QTest.keyClick(g, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(g, Qt.Key.Key_Space)
    pump(app, 1.0)
    save(w, "19-bulk-accept-page.png")

    # item 9: Show = Review open, F: the walk goes on past the filter to the ALL calls it hid
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("review_open"))
    w.browser.select_row(0)
    g.setFocus()
    w.start_walk()
    for _ in range(200):
        cur = w.browser.current_cell()
        if cur is None or not cur.left_before_signoff or w.filters.filter_combo.currentData() != "review_open":
            break
        QTest.keyClick(g, Qt.Key.Key_Space)
    pump(app, 1.0)
    save(w, "20-walk-past-the-filter.png")
    for _ in range(200):
        cur = w.browser.current_cell()
        if cur is None or not cur.left_before_signoff:
            break
        QTest.keyClick(g, Qt.Key.Key_Space)

    # item 3: sign-off asks for the sample id
    def give_id(box) -> None:
        box.findChild(QLineEdit).setText("BM-H5-001")
        box.accept()

    w.case_actions.ask_comment = lambda c, r: ("", True)
    on_modal(app, "21-signoff-sample-id.png", give_id)
    w.case_actions.sign_off()
    pump(app, 0.5)

    # item 11: three cases in the summary, each by sample id and folder, the ✓ visible
    w.opener.open_paths([folder("Patient 2026-11-30 A", "all", 12), folder("Patient 2026-11-30 B", "all", 12, 7)])
    wait(app, lambda: len(w.doc.cases) == 3 and not w.runs.running and all(c.result for c in w.cell_model.cells))
    for name, sid in (("Patient 2026-11-30 A", "BM-2026-1130-A"), ("Patient 2026-11-30 B", "BM-2026-1130-B")):
        w.doc.set_sample_id(w.doc.case_named(name), sid)
    w.views.refresh_summary()
    pump(app, 1.0)
    save(w.side, "22-summary-three-cases.png")

    # item 3: Ctrl+P with three cases asks which one (one patient per PDF)
    on_modal(app, "23-pdf-which-case.png", lambda box: box.reject())
    g.setFocus()
    w.exports.pdf_dialog()
    pump(app, 0.5)

    # item 10: a click on the P(ALL) chart: the label keys are off, as the status bar says
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("all"))
    w.browser.select_row(0)
    h = w.side.histogram
    QTest.mouseClick(h, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(h.width() // 2, 20))
    pump(app, 0.6)
    save(w, "24-label-keys-off.png")

    # item 1: Ctrl+W asks, and says that closing never erases the record
    def close_without_export(box) -> None:
        next(b for b in box.buttons() if b.text() == "Close without exporting").click()

    on_modal(app, "25-close-keeps-record.png", close_without_export)
    w.opener.close_cases()
    pump(app, 0.5)
    assert not w.doc.cells
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
