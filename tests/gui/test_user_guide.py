"""Help ▸ User guide opens the bundled guide inside the app (issue 28 item 5): Markdown rendered by QTextBrowser,
read and its pictures decoded off the GUI thread."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import make_window  # noqa: F401  (fixture)
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication

from gui.user_guide import UserGuide, guide_path


def test_help_user_guide_shows_the_bundled_guide(qtbot, make_window):
    w = make_window(wait_model=False)
    menus = {a.text(): a.menu() for a in w.menuBar().actions()}
    assert w.acts["user_guide"] in menus["&Help"].actions()
    w.acts["user_guide"].trigger()
    qtbot.waitUntil(lambda: any(isinstance(d, UserGuide) for d in w.findChildren(UserGuide)), timeout=5_000)
    guide = w.findChildren(UserGuide)[0]
    first_heading = next(
        line for line in guide_path().read_text(encoding="utf-8").splitlines() if line.startswith("# ")
    )
    qtbot.waitUntil(lambda: first_heading[2:].strip() in guide.browser.toPlainText(), timeout=10_000)
    assert "Loading" not in guide.browser.toPlainText() and guide.isVisible()
    guide.close()


def test_guide_pictures_are_decoded_on_a_worker_and_shown(qtbot, tmp_path):
    from PIL import Image

    Image.new("RGB", (1720, 10), (200, 0, 0)).save(tmp_path / "pic.png")
    (tmp_path / "guide.md").write_text("# Title\n\nSome **bold** text.\n\n![a picture](pic.png)\n", encoding="utf-8")
    g = UserGuide(path=tmp_path / "guide.md")
    qtbot.addWidget(g)
    qtbot.waitUntil(lambda: "Title" in g.browser.toPlainText(), timeout=5_000)
    image = g.browser.document().resource(QTextDocument.ResourceType.ImageResource, "pic.png")
    assert image is not None and image.width() == 860  # the worker's scaled copy, not a load by the browser
    assert "**" not in g.browser.toPlainText()  # rendered, not shown as Markdown source
    QApplication.processEvents()


def test_a_missing_guide_says_so(qtbot, tmp_path):
    g = UserGuide(path=tmp_path / "nope.md")
    qtbot.addWidget(g)
    qtbot.waitUntil(lambda: "could not be read" in g.browser.toPlainText(), timeout=5_000)
