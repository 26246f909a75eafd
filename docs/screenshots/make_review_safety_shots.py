"""The review-safety screenshots (excluded cells, the QC column, sign-off that says what is left, the PDF's
blast pages): ``xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/make_review_safety_shots.py``.

A case of 60 real C-NMC cells (``../shared/data``) plus a blank white frame, classified with the installed
default model; settings and autosaves go to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs" / "screenshots"))
sys.path.insert(0, str(REPO))
TMP = Path(tempfile.mkdtemp(prefix="leukoscan-shots-"))
os.environ["LEUKOSCAN_DATA_DIR"] = str(TMP / "user")

from make_screenshots import OUT, SHARED, pump, save, wait
from PIL import Image
from PySide6.QtWidgets import QApplication, QMessageBox


def case_folder() -> Path:
    files = sorted(SHARED.glob("fold_1/*/*.webp"))
    pick = files[:: max(1, len(files) // 60)][:60]
    d = TMP / "BM-2026-0512"
    d.mkdir(parents=True)
    for i, f in enumerate(sorted(pick, key=lambda p: zlib.crc32(p.name.encode()))):
        (d / f"cell_{i + 1:03d}{f.suffix}").symlink_to(f)
    Image.new("RGB", (450, 450), (255, 255, 255)).save(d / "cell_061_blank.png")
    return d


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_runtime
    from gui.mainwindow import MainWindow
    from gui.review_command import Accept
    from gui.service import EngineService
    from gui.settings import Settings

    configure_runtime()
    s = Settings()
    s.reviewer = "J. Rivera"
    w = MainWindow(EngineService(None), s, check_orphans=False)
    w.resize(1480, 920)
    w.show()
    wait(app, lambda: w.model_chooser.classifier is not None)
    case = case_folder()
    w.opener.open_paths([case])
    wait(
        app, lambda: not w.runs.running and len(w.cell_model.cells) == 61 and all(c.result for c in w.cell_model.cells)
    )
    pump(app, 0.5)

    # the blank frame: QC failed, excluded, where the technician looks
    w.browser.setCurrentWidget(w.browser.table)
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("qc"))
    w.browser.select_row(0)
    pump(app, 1.0)
    save(w, "12-qc-excluded.png")
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("all"))
    w.browser.setCurrentWidget(w.browser.gallery)

    # sign-off says what is left and offers the walk
    w.browser.select_row(0)
    w.case_actions.sign_off()
    pump(app, 0.8)
    box = next(b for b in w.findChildren(QMessageBox) if b.windowTitle() == "Cannot sign off yet" and b.isVisible())
    save(box, "13-signoff-what-is-left.png")
    walk = next(b for b in box.buttons() if b.text().startswith("Walk them"))
    walk.click()
    pump(app, 1.0)
    save(w, "14-walk-unconfirmed-blasts.png")
    w.prompts.confirm_bulk_accept = lambda n, left: True
    for _ in range(len(w.cell_model.cells)):
        if not any(c.left_before_signoff for c in w.cell_model.cells):
            break
        w.reviews.apply(Accept())
    w.case_actions.ask_comment = lambda c, r: ("blasts confirmed one by one", True)
    w.case_actions.ask_sample_id = lambda c: "BM-2026-0512"  # sign-off asks for it (a signed report names one patient)
    assert w.case_actions.sign_off()
    pdf = TMP / "BM-2026-0512.pdf"
    done = []
    w.exports.written.connect(lambda *a: done.append(a))
    w.exports.pdf(pdf)
    wait(app, lambda: bool(done) and pdf.exists(), timeout=120)
    w.doc.unexported = False
    w.close()
    for page in (1, 2):
        out = OUT / f"15-pdf-page-{page}"
        if shutil.which("pdftoppm"):
            subprocess.run(
                ["pdftoppm", "-png", "-r", "70", "-f", str(page), "-l", str(page), "-singlefile", str(pdf), str(out)],
                check=True,
            )
        else:  # no poppler: pypdfium2 (pip install pypdfium2) renders the same page at the same 70 dpi
            import pypdfium2

            pypdfium2.PdfDocument(str(pdf))[page - 1].render(scale=70 / 72).to_pil().save(f"{out}.png")
        print(f"{out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
