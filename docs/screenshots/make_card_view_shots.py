"""Re-take the model card view screenshots (issue 19: per-donor chart, reliability diagram, details toggle):
``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_card_view_shots.py``.

Opens Help > Model card's dialog for the installed models (``resources/models``) without the main window: the view
draws only from the cards, so no case is needed.  Writes ``16-model-card-<name>.png`` and, with the JSON shown,
``16-model-card-details.png``.
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
os.environ.setdefault("LEUKOSCAN_DATA_DIR", tempfile.mkdtemp(prefix="leukoscan-shots-"))

from PySide6.QtWidgets import QApplication

from engine.registry import Registry


def pump(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_runtime
    from gui.dialogs import ModelInfoDialog

    configure_runtime()
    cards = Registry().cards()
    if not cards:
        sys.exit("no installed models in resources/models")
    for card in cards:
        dlg = ModelInfoDialog(card, cards, None, None)
        dlg.show()
        pump(app, 0.6)
        p = OUT / f"16-model-card-{card.name}.png"
        dlg.grab().save(str(p), "PNG")
        print(p)
        if card.name == cards[0].name:
            dlg.view.toggle.setChecked(True)
            pump(app, 0.4)
            p = OUT / "16-model-card-details.png"
            dlg.grab().save(str(p), "PNG")
            print(p)
        dlg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
