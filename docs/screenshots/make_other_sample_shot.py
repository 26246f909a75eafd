"""The screenshot of a folder opened again that holds another sample (issue 26 item 2, the app's half):
``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_other_sample_shot.py``.

Eight real HEM cells are classified as case BM-H5-001 with the installed default model and closed (the record is
kept); the folder's images are then replaced by eight ALL cells under other names and the folder is opened again.
Writes ``26-not-this-case.png`` (the question) and ``27-record-kept-as-it-was.png`` (the answer "Keep the record
as it is": the record's eight cells, nothing added).  Settings and case records go to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs" / "screenshots"))
sys.path.insert(0, str(REPO))
TMP = Path(tempfile.mkdtemp(prefix="leukoscan-other-sample-shot-"))
os.environ["LEUKOSCAN_DATA_DIR"] = str(TMP / "user")

from make_review_confirm_shots import on_modal
from make_screenshots import SHARED, pump, save, wait
from PySide6.QtWidgets import QApplication


def fill(d: Path, kind: str, prefix: str) -> None:
    for i, f in enumerate(sorted(SHARED.glob(f"fold_1/{kind}/*.webp"))[:8]):
        shutil.copyfile(f, d / f"{prefix}_{i + 1:03d}{f.suffix}")


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_runtime
    from gui.mainwindow import MainWindow
    from gui.service import EngineService
    from gui.settings import Settings

    configure_runtime()
    s = Settings()
    s.reviewer = "J. Rivera"
    w = MainWindow(EngineService(None), s, check_orphans=False)
    w.resize(1480, 920)
    w.show()
    wait(app, lambda: w.model_chooser.classifier is not None)
    incoming = TMP / "incoming"
    incoming.mkdir()
    fill(incoming, "hem", "cell")
    w.opener.open_paths([str(incoming)])
    wait(app, lambda: not w.runs.running and len(w.cell_model.cells) == 8 and all(c.result for c in w.cell_model.cells))
    w.doc.set_sample_id(next(iter(w.doc.cases.values())), "BM-H5-001")
    w.opener.close_cases()
    for f in incoming.iterdir():
        f.unlink()
    fill(incoming, "all", "scan")  # another patient's cells in the same folder
    on_modal(app, "26-not-this-case.png", lambda box: box.buttons()[1].click())  # "Keep the record as it is"
    w.opener.open_paths([str(incoming)])
    wait(app, lambda: "another sample's images" in w.statusBar().currentMessage())
    wait(app, lambda: not w.runs.held)
    pump(app, 1.0)
    save(w, "27-record-kept-as-it-was.png")
    w.doc.unexported = False
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
