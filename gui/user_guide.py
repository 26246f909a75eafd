"""Help ▸ User guide: the bundled ``docs/user_guide.md`` shown inside the app (QTextBrowser renders Markdown).

The guide and its pictures are read and decoded on a worker (:mod:`gui.tasks`), never on the GUI thread; links
to other pages open in the system's browser or viewer.  The bundle carries ``docs/`` (build.spec).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QImage, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

from .tasks import TaskRunner

_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
MAX_WIDTH = 860  # pixels: a picture's widest in the guide's window
SMOOTH = Qt.TransformationMode.SmoothTransformation


def guide_path() -> Path:
    """``docs/user_guide.md`` of the source tree, or of the PyInstaller bundle when frozen."""
    base = getattr(sys, "_MEIPASS", None) if getattr(sys, "frozen", False) else None
    root = Path(base) if base else Path(__file__).resolve().parents[1]
    return root / "docs" / "user_guide.md"


def read_guide(_state, path: Path) -> tuple[str, dict[str, QImage]]:
    """The guide's Markdown and its pictures (name as written -> image), decoded here (a worker)."""
    text = path.read_text(encoding="utf-8")
    images: dict[str, QImage] = {}
    for name in dict.fromkeys(_IMAGE.findall(text)):
        if "://" in name:
            continue
        image = QImage(str(path.parent / name))
        if not image.isNull():  # screenshots are 1600 px wide: scaled here, so the page needs no sideways scroll
            images[name] = image.scaledToWidth(MAX_WIDTH, SMOOTH) if image.width() > MAX_WIDTH else image
    return text, images


class UserGuide(QDialog):
    def __init__(self, parent=None, path: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("LeukoScan user guide")
        self.resize(900, 700)
        self.path = path or guide_path()
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        self.browser.setPlainText("Loading the user guide…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)
        self._runner = TaskRunner(1, "leukoscan-guide", self)
        self.finished.connect(lambda _code: self._runner.shutdown(wait=False))
        self.task = self._runner.start(read_guide, self.path, on_result=self._show, on_error=self._failed)

    def _show(self, loaded: tuple[str, dict[str, QImage]]) -> None:
        text, images = loaded
        self.browser.setMarkdown(text)  # (clears the document's resources: the pictures are added after it)
        doc = self.browser.document()
        doc.setBaseUrl(QUrl.fromLocalFile(str(self.path)))  # relative links open beside the guide
        for name, image in images.items():  # keyed as the document looks them up: resolved against its base
            doc.addResource(QTextDocument.ResourceType.ImageResource, doc.baseUrl().resolved(QUrl(name)), image)
        doc.markContentsDirty(0, doc.characterCount())  # laid out again with them

    def _failed(self, exc: BaseException) -> None:
        self.browser.setPlainText(
            f"The user guide could not be read ({self.path}): {exc}. It is also online with the source, docs/user_guide.md."
        )
