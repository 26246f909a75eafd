"""Re-take the user-guide screenshots: ``xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/make_screenshots.py``.

Drives the real app (X11 through Xvfb, or offscreen) on real C-NMC cells from ``../shared/data``:
a case folder of 400 cells, then the bad-input folder of the tests.  Uses the installed models
(``resources/models``) when there are any, else the tiny test models (then the screenshots say so in
their file list printed at the end, and the P(ALL) values are those of a toy model).
Settings and autosaves go to a temporary folder; nothing of the user's is touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "C-NMC_Leukemia" / "training_data"

TMP = Path(tempfile.mkdtemp(prefix="leukoscan-shots-"))
os.environ["LEUKOSCAN_DATA_DIR"] = str(TMP / "user")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine.registry import Registry


def pump(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait(app, cond, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("screenshot state not reached")
        app.processEvents()
        time.sleep(0.01)


def save(widget, name: str) -> Path:
    p = OUT / name
    widget.grab().save(str(p), "PNG")
    print(p)
    return p


def case_folder() -> Path:
    files = sorted(SHARED.glob("fold_1/*/*.webp"))
    if not files:
        sys.exit(f"C-NMC cells not found under {SHARED}")
    pick = files[:: max(1, len(files) // 400)][:400]
    d = TMP / "Patient 017 - slide A"
    d.mkdir(parents=True)
    for i, f in enumerate(sorted(pick, key=lambda p: zlib.crc32(p.name.encode()))):  # mixed, reproducible
        (d / f"cell_{i + 1:04d}{f.suffix}").symlink_to(f)
    return d


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_runtime
    from gui.document import Call
    from gui.mainwindow import MainWindow
    from gui.review_command import Accept, SetLabel
    from gui.service import EngineService
    from gui.settings import Settings

    configure_runtime()
    dirs = None
    if not Registry().cards():
        from tinymodels import make_tiny_ensemble, make_tiny_model

        d = TMP / "models"
        make_tiny_model(d, name="tiny_a", size=32, seed=0)
        make_tiny_model(d, name="tiny_b", size=48, seed=3, crop_fraction=0.8)
        make_tiny_ensemble(d, ["tiny_a", "tiny_b"], name="tiny_ensemble")
        dirs = [d]
        print("NOTE: no installed models: screenshots use the tiny TEST models")
    s = Settings()
    s.reviewer = "J. Rivera"
    s.batch_size = 4
    w = MainWindow(EngineService(dirs), s, check_orphans=False)
    w.resize(1480, 920)
    w.show()
    wait(app, lambda: w.model_chooser.classifier is not None)
    pump(app, 0.5)
    save(w, "00-start.png")

    case = case_folder()
    w.opener.open_paths([case])
    wait(app, lambda: w.runs.running and w.runs.done >= 40)
    pump(app, 0.8)
    save(w, "01-running.png")
    wait(app, lambda: not w.runs.running)
    s.batch_size = 16
    pump(app, 0.5)

    # review: override one cell, accept two, then select a cell that needs review
    w.browser.select_row(0)
    first = w.browser.current_cell()
    w.reviews.apply(SetLabel(Call.HEM if first.prediction == "ALL" else Call.ALL))
    w.reviews.apply(Accept())
    w.reviews.apply(Accept())
    w.reviews.next_open()
    pump(app, 1.5)
    save(w, "02-gallery-review.png")

    w.browser.setCurrentWidget(w.browser.table)
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("review_open"))
    w.browser.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)
    w.browser.select_row(2)
    pump(app, 0.8)
    save(w, "03-table-needs-review.png")
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("all"))
    w.browser.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    w.browser.setCurrentWidget(w.browser.gallery)

    w.thr_bar.spin.setValue(round(w.model_chooser.classifier.threshold + 0.15, 2))
    w.browser.select_row(5)
    pump(app, 1.5)
    save(w, "04-threshold-changed.png")
    w.reset_threshold()

    from conftest import build_bad_input

    bad = build_bad_input(TMP / "slide 02 (mixed formats)")
    w.opener.open_paths([bad.path])
    wait(app, lambda: not w.runs.running and any(c.status == "error" for c in w.cell_model.cells))
    w.filters.case_combo.setCurrentIndex(w.filters.case_combo.findData(w.doc.case_of_root(str(bad.path)).name))
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("all"))
    row = next(r for r in range(w.browser.proxy.rowCount()) if w.browser.proxy.cell_at(r).status == "error")
    w.browser.select_row(row)
    pump(app, 1.5)
    save(w, "05-error-tiles.png")

    # the lab workflow on the first case: review-flagged mode, compare, zoom, sign-off
    w.filters.case_combo.setCurrentIndex(w.filters.case_combo.findData(w.doc.case_of_root(str(case)).name))
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("all"))
    w.doc.set_sample_id(w.doc.case_of_root(str(case)), "BM-2026-0417")
    w.browser.select_row(0)
    w.acts["flagged"].setChecked(True)
    for _ in range(12):
        w.reviews.apply(Accept())
    pump(app, 1.0)
    save(w, "09-review-flagged.png")
    w.browser.gallery.selectionModel().clearSelection()
    from PySide6.QtCore import QItemSelectionModel

    sm = w.browser.gallery.selectionModel()
    for r in (1, 2, 3):
        sm.select(
            w.browser.proxy.index(r, 0),
            QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
        )
    from gui.compare import CompareDialog

    cmp = CompareDialog(w.browser.selected_cells(), w)
    cmp.resize(1200, 520)
    cmp.show()
    pump(app, 1.5)
    cmp.zoom.zoom_by(2.0)
    pump(app, 0.8)
    save(cmp, "10-compare.png")
    cmp.close()
    name = w.doc.case_of_root(str(case)).name
    w.prompts.confirm_bulk_accept = lambda n, left: True  # no modal question in a script
    for _ in range(len(w.cell_model.cells)):
        if not any(c.left_before_signoff and c.case == name for c in w.cell_model.cells):
            break
        w.reviews.next_open()
        w.reviews.apply(Accept())
    w.case_actions.ask_comment = lambda c, r: ("blast count confirmed", True)
    w.case_actions.sign_off()
    w.acts["flagged"].setChecked(False)
    pump(app, 1.0)
    save(w, "11-signed-off.png")

    from gui.dialogs import AboutDialog, ModelInfoDialog

    dlg = ModelInfoDialog(
        w.model_chooser.cards[w.model_chooser.classifier.name],
        list(w.model_chooser.cards.values()),
        w.model_chooser.classifier,
        w,
    )
    dlg.show()
    pump(app, 0.5)
    save(dlg, "06-model-card.png")
    dlg.close()
    about = AboutDialog("0.1.0", list(w.model_chooser.cards.values()), w.model_chooser.problems, w)
    about.show()
    pump(app, 0.5)
    save(about, "07-about.png")
    about.close()

    w.doc.unexported = False
    w.close()

    # a workstation where no model is installed (or every card is broken)
    empty = TMP / "empty-models"
    empty.mkdir()
    (empty / "inceptionv3.json").write_text('{"name": "inceptionv3", "threshold": 0.5')
    w2 = MainWindow(EngineService([empty]), s, check_orphans=False)
    w2.resize(1480, 920)
    w2.show()
    wait(app, lambda: w2.notices.banner.isVisible())
    pump(app, 0.5)
    save(w2, "08-no-models.png")
    w2.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
