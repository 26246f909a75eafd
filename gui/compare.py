"""Two to four cells side by side at one magnification, to judge them against each other.

All views share one :class:`gui.zoom.ZoomState`: zooming or panning any of them moves all of them, so
the same region of every cell is seen at the same scale (image pixels per screen pixel; a smaller
image sits centred in the frame of the largest).  Images are the files' own pixels, decoded off the
GUI thread by the dialog's own loader, which stops when the dialog closes.

Usage (the caller shows the ValueError's message when the selection has the wrong size)::

    try:
        dlg = CompareDialog(cells, parent=window)  # 2-4 gui.cells.Cell objects
    except ValueError as e:
        QMessageBox.information(window, "Compare", str(e))
    else:
        dlg.show()  # non-modal; deletes itself on close (Esc, Close, the window's X)
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QGridLayout, QLabel, QPushButton, QVBoxLayout

from .cells import ERROR, PENDING, Cell
from .imageview import ImageView
from .style import ERROR_COLOR, REVIEWED_COLOR, label_color
from .tasks import TaskRunner
from .thumbs import full_size_loader
from .zoom import ZoomState

MIN_CELLS, MAX_CELLS = 2, 4


def check_count(n: int) -> None:
    """Raise ValueError (a message for the technician) unless 2-4 cells are to be compared."""
    if not MIN_CELLS <= n <= MAX_CELLS:
        raise ValueError(f"Select {MIN_CELLS} to {MAX_CELLS} cells to compare ({n} selected).")


def _span(color: QColor, text: str) -> str:
    return f'<span style="color:{color.name()}; font-weight:bold">{escape(text)}</span>'


def caption_html(c: Cell) -> str:
    """File name, model class and P(ALL), and the reviewer's label when there is one."""
    rows = [f"<b>{escape(c.file)}</b>"]
    if c.status == PENDING:
        rows.append("<i>Not classified yet</i>")
    elif c.status == ERROR:
        rows.append(_span(ERROR_COLOR, "Error: ") + escape(c.error))
    else:
        rows.append(
            f"Model: {_span(label_color(c.prediction), c.prediction or '')} &nbsp; "
            f"P(ALL) = <b>{escape(c.p_text(3))}</b>"
        )
    if c.review is not None:
        verdict = " (overridden)" if c.overridden else ""
        rows.append(_span(REVIEWED_COLOR, f"Reviewed: {c.review.label}") + verdict)
    return "<br>".join(rows)


class CompareDialog(QDialog):
    def __init__(self, cells: Iterable[Cell], parent=None, images: TaskRunner | None = None) -> None:
        """``images``: the runner that decodes the window's images (None: one of its own, ended with the dialog)."""
        cells = list(cells)
        check_count(len(cells))  # before the QDialog exists: a refused dialog leaves nothing behind
        super().__init__(parent)
        self.setWindowTitle(f"Compare {len(cells)} cells")
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.cells = cells
        self.zoom = ZoomState()
        self.loader = full_size_loader(max_pending=MAX_CELLS, runner=images, parent=self)
        self.loader.ready.connect(self._ready)
        self.finished.connect(lambda _r: self.loader.close())  # Esc / Close / X all end in done()

        cols = len(cells) if len(cells) <= 3 else 2
        grid = QGridLayout()
        self.views: list[ImageView] = []
        self.captions: list[QLabel] = []
        for i, c in enumerate(cells):
            view = ImageView(zoom=self.zoom)
            view.setObjectName(f"compareView{i}")
            view.frame = ERROR_COLOR if c.status == ERROR else label_color(c.final_label)
            view.text = f"Cannot display this file:\n{c.error}" if c.status == ERROR else "Loading…"
            caption = QLabel(caption_html(c))
            caption.setTextFormat(Qt.TextFormat.RichText)
            caption.setWordWrap(True)
            caption.setToolTip(str(c.path))
            caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            caption.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            row, col = 2 * (i // cols), i % cols  # captions in their own row: every view gets one size
            grid.addWidget(view, row, col)
            grid.addWidget(caption, row + 1, col)
            grid.setRowStretch(row, 1)
            self.views.append(view)
            self.captions.append(caption)
        for col in range(cols):
            grid.setColumnStretch(col, 1)

        hint = QLabel("Wheel: zoom · drag: pan · double-click or 0: fit · +/−: zoom — all views move together")
        hint.setObjectName("compareHint")
        fit = QPushButton("Fit")
        fit.setToolTip("Show the whole of every cell  [0]")
        fit.clicked.connect(self.zoom.fit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(fit, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(grid, 1)
        lay.addWidget(hint)
        lay.addWidget(buttons)
        rows = (len(cells) + cols - 1) // cols
        self.resize(min(1500, 360 * cols + 40), min(960, 430 * rows + 90))
        for c in cells:
            if c.status != ERROR:
                self.loader.get(c.key)  # queue the decode; ``ready`` brings the image

    def _ready(self, key: str) -> None:
        img = self.loader.get(key)
        for c, view in zip(self.cells, self.views):
            if c.key != key or c.status == ERROR:
                continue
            if img is None and self.loader.failed(key):
                view.text = f"Cannot display this file:\n{c.path}"
            view.set_image(img)
        self._size_shared_frame()

    def _size_shared_frame(self) -> None:
        """The shared zoom frame is the largest loaded image; it only changes (back to fit) when a
        larger image arrives, so a late image of the usual size never undoes the technician's zoom."""
        shown = [v.image for v in self.views if v.image is not None]
        if not shown:
            return
        w, h = max(i.width() for i in shown), max(i.height() for i in shown)
        if (w, h) != (self.zoom.image_w, self.zoom.image_h):
            self.zoom.set_image(w, h)
