"""Re-take the class-activation overlay screenshot (issue 19):
``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_cam_shot.py``.

The real app on 12 real C-NMC cells with the installed default model; the preview's "What the model looked at"
toggle on for an ALL and a HEM call, then for an ALL call of VGG19.  Writes ``17-cam-overlay-all.png``,
``17-cam-overlay-hem.png`` and ``17-cam-overlay-vgg19.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "C-NMC_Leukemia" / "training_data"
TMP = Path(tempfile.mkdtemp(prefix="leukoscan-cam-shot-"))
os.environ["LEUKOSCAN_DATA_DIR"] = str(TMP / "user")

from PySide6.QtWidgets import QApplication


def wait(app, cond, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("screenshot state not reached")
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_runtime
    from gui.mainwindow import MainWindow
    from gui.service import EngineService
    from gui.settings import Settings

    configure_runtime()
    files = sorted(SHARED.glob("fold_1/all/*"))[::50][:6] + sorted(SHARED.glob("fold_1/hem/*"))[::50][:6]
    case = TMP / "Patient 017 - slide A"
    case.mkdir(parents=True)
    for i, f in enumerate(files):
        (case / f"cell_{i + 1:02d}{f.suffix}").symlink_to(f)
    s = Settings()
    s.reviewer = "J. Rivera"
    w = MainWindow(EngineService(None), s, check_orphans=False)
    w.resize(1480, 920)
    w.show()
    wait(app, lambda: w.model_chooser.classifier is not None)
    w.opener.open_paths([case])
    wait(app, lambda: w.runs.running)
    wait(app, lambda: not w.runs.running)
    from gui.preview import PreviewPanel

    panel = w.findChild(PreviewPanel)
    panel.btn_cam.setChecked(True)
    cells = w.cell_model.cells
    shots = (
        ("ALL", "17-cam-overlay-all.png", None),
        ("HEM", "17-cam-overlay-hem.png", None),
        ("ALL", "17-cam-overlay-vgg19.png", "vgg19"),
    )  # VGG19's 40 x 40 map: finer than InceptionV3's
    for want, name, model in shots:
        if model and w.model_chooser.classifier.name != model:
            w.model_chooser.select(model)
            wait(app, lambda m=model: w.model_chooser.classifier.name == m)
            wait(app, lambda: w.runs.running, 60)
            wait(app, lambda: not w.runs.running)
        row = next(i for i, c in enumerate(cells) if c.prediction == want)
        w.browser.select_row(row)
        wait(app, lambda: panel.view.overlay is not None or panel.cam_status.text().startswith("No overlay"), 120)
        t = time.monotonic()
        while time.monotonic() - t < 0.5:
            app.processEvents()
        p = OUT / name
        w.grab().save(str(p), "PNG")
        print(p, panel.cam_status.text())
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
