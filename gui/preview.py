"""Large preview of the selected cell with its details and the review buttons.

The image is the file's own pixels (up to :data:`gui.thumbs.FULL_SIZE_CAP`), decoded off the GUI thread,
so zooming in (:class:`gui.imageview.ImageView`) shows real pixels; a new cell starts at fit."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .browser import READABLE_TILE_PX
from .cam_overlay import CamOverlay
from .cells import ERROR, PENDING, Cell, exclusion_reason, local_time
from .document import Call
from .imageview import ImageView
from .review_command import Accept, Clear, Exclude, ReviewRequest, SetLabel
from .style import ERROR_COLOR, REVIEW_COLOR, REVIEWED_COLOR, label_color
from .tasks import TaskRunner
from .thumbs import full_size_loader

__all__ = ["ImageView", "PreviewPanel", "details_html"]


class PreviewPanel(QWidget):
    reviewRequested = Signal(object)  # a gui.review_command.ReviewRequest (ReviewActions.apply takes it)
    nextRequested = Signal()
    shown = Signal(object)  # a classified cell was put on screen here, at a readable size (a person saw it)

    def __init__(
        self,
        classifier: Callable[[], Any],
        is_locked: Callable[[Cell], bool],
        parent=None,
        images: TaskRunner | None = None,
    ) -> None:
        """``classifier``: the model loaded now, or None (read when a map is wanted: a model chosen later is used);
        ``is_locked(cell)``: the cell's case is signed off, so its review buttons are off; ``images``: the runner
        that decodes the window's images (None: one of its own)."""
        super().__init__(parent)
        self.is_locked = is_locked
        self.loader = full_size_loader(runner=images, parent=self)
        self.loader.ready.connect(self._ready)
        self.cell: Cell | None = None
        self.view = ImageView()
        self.details = QLabel()
        self.details.setObjectName("cellDetails")
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        buttons = QGridLayout()
        self.btn_all = QPushButton("ALL  [A]")
        self.btn_hem = QPushButton("HEM  [H]")
        self.btn_accept = QPushButton("Accept  [Space]")
        self.btn_clear = QPushButton("Clear review  [U]")
        self.btn_exclude = QPushButton("Exclude…  [X]")
        self.btn_next = QPushButton("Next to review  [N]")
        self.btn_cam = QPushButton("What the model looked at")
        self.btn_cam.setCheckable(True)
        self.btn_cam.setToolTip(
            "Overlay the model's class-activation map on this cell: red regions pushed the call "
            "towards ALL, blue towards HEM.\nComputed for the cell on screen only."
        )
        self.btn_cam.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.cam = CamOverlay(self.view, classifier, self)
        self.cam_status = QLabel()
        self.cam_status.setWordWrap(True)
        self.cam_status.setVisible(False)
        self.cam.status.connect(self._cam_status)
        self.btn_cam.toggled.connect(self.cam.set_enabled)
        self._wire_review_buttons(buttons)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.btn_cam)
        lay.addWidget(self.cam_status)
        lay.addLayout(buttons)
        lay.addWidget(self.details)
        self.show_cell(None)

    def _wire_review_buttons(self, grid: QGridLayout) -> None:
        """The review buttons' tips, signals and places (they never take the keyboard focus from the gallery)."""
        for b, tip in (
            (self.btn_all, "Label the selected cells ALL (blast)"),
            (self.btn_hem, "Label the selected cells HEM (normal)"),
            (self.btn_accept, "Accept the model's class for the selected cells"),
            (self.btn_clear, "Remove the review of the selected cells"),
            (self.btn_exclude, "Not a cell, artefact, duplicate: exclude from % blasts (asks why)"),
            (self.btn_next, "Go to the next cell that needs review"),
        ):
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the gallery
        requests: tuple[tuple[QPushButton, ReviewRequest], ...] = (
            (self.btn_all, SetLabel(Call.ALL)),
            (self.btn_hem, SetLabel(Call.HEM)),
            (self.btn_accept, Accept()),
            (self.btn_clear, Clear()),
            (self.btn_exclude, Exclude()),
        )
        for button, request in requests:
            button.clicked.connect(lambda _checked=False, r=request: self.reviewRequested.emit(r))
        self.btn_next.clicked.connect(self.nextRequested.emit)
        grid.addWidget(self.btn_all, 0, 0)
        grid.addWidget(self.btn_hem, 0, 1)
        grid.addWidget(self.btn_accept, 1, 0)
        grid.addWidget(self.btn_clear, 1, 1)
        grid.addWidget(self.btn_exclude, 2, 0)
        grid.addWidget(self.btn_next, 2, 1)

    def show_cell(self, cell: Cell | None, selected: int = 1) -> None:
        reviewable = cell is not None and cell.status not in (PENDING, ERROR)
        locked = cell is not None and self.is_locked(cell)
        for b in (self.btn_all, self.btn_hem, self.btn_accept, self.btn_clear, self.btn_exclude):
            b.setEnabled((reviewable or selected > 1) and not locked)
            b.setToolTip(
                b.toolTip().split("\n")[0]
                + ("\nThe case is signed off: Review ▸ Reopen case to change it" if locked else "")
            )
        new_cell = cell is None or self.cell is None or cell.key != self.cell.key
        self.cell = cell
        if cell is None:
            self.cam.show(None)
            self.view.set_image(None)
            self.view.text = "No cell selected"
            self.view.frame = QColor("#555")
            self.details.setText("<i>Select a cell in the gallery or the table.</i>")
            self.view.update()
            return
        self.view.text = (
            f"Cannot display this file:\n{cell.error}" if cell.status == ERROR else self._waiting_text(cell)
        )
        self.view.frame = ERROR_COLOR if cell.status == ERROR else label_color(cell.final_label)
        self.details.setText(details_html(cell, selected))
        self.view.set_image(None if cell.status == ERROR else self.loader.get(cell.key), reset=new_cell)
        self.cam.show(cell)
        if reviewable and self.view.isVisible() and min(self.view.width(), self.view.height()) >= READABLE_TILE_PX:
            self.shown.emit(cell)

    def refresh(self) -> None:
        self.show_cell(self.cell)

    def _waiting_text(self, cell: Cell) -> str:
        """What the view says while it has no image: "Loading…" unless the decode already failed
        (then no load will ever come, so say why)."""
        if not self.loader.failed(cell.key):
            return "Loading…"
        if not cell.path.is_file():
            return f"File no longer available:\n{cell.path}"
        return f"Cannot display this file:\n{cell.path}"

    def _ready(self, key: str) -> None:
        if self.cell is not None and self.cell.key == key:
            self.view.set_image(self.loader.get(key), reset=False)
            if self.view.image is None and self.cell.status != ERROR:
                self.view.text = self._waiting_text(self.cell)
            self.view.update()

    def close_loader(self) -> None:
        self.loader.close()
        self.cam.close()

    def _cam_status(self, text: str) -> None:
        self.cam_status.setText(text)
        self.cam_status.setVisible(bool(text))


def _span(color: QColor, text: str) -> str:
    return f'<span style="color:{color.name()}; font-weight:bold">{escape(text)}</span>'


SEEN_WORDS = {"walk": "in the walk", "preview": "in the preview", "gallery page": "on a gallery page"}


def review_verdict(c: Cell) -> str:
    """What the review did to the model's call: "excluded", "overridden" or "accepted" (an exclusion is neither an
    acceptance nor an override: the cell stops counting)."""
    if c.review is not None and exclusion_reason(c.review.label):
        return "excluded"
    return "overridden" if c.overridden else "accepted"


def details_html(c: Cell, selected: int = 1) -> str:
    rows = []
    if selected > 1:
        rows.append(f"<b>{selected} cells selected</b> (review keys apply to all of them)")
    rows.append(f"<b>{escape(c.file)}</b>")
    rows.append(f"Case: {escape(c.case)} &nbsp; Folder: {escape(c.folder)}")
    if c.status == PENDING:
        rows.append("<i>Not classified yet</i>")
    elif c.status == ERROR:
        rows.append(_span(ERROR_COLOR, "Error: ") + escape(c.error))
    else:
        model = _span(label_color(c.prediction), c.prediction or "")
        rows.append(f"Model: {model} &nbsp; P(ALL) = <b>{c.p_text(3)}</b>")
        mp = getattr(c.result, "member_p", None) or {}
        if mp:
            rows.append("Members: " + ", ".join(f"{escape(k)} {v:.3f}" for k, v in mp.items()))
            if getattr(c.result, "members_disagree", False):
                rows.append(_span(REVIEW_COLOR, "Members disagree"))
        if c.qc:
            rows.append(_span(REVIEW_COLOR, "QC failed: ") + escape(c.qc))
        if c.excluded:
            rows.append(_span(REVIEW_COLOR, "Excluded from % blasts: ") + escape(exclusion_reason(c.final_label)))
        if c.review_open:
            rows.append(_span(REVIEW_COLOR, "Flagged: review open"))
    if c.review is not None:
        verdict = review_verdict(c)
        rows.append(
            _span(REVIEWED_COLOR, f"Reviewed: {c.review.label}")
            + f" ({verdict}) by {escape(c.review.reviewer)}, {escape(local_time(c.review.reviewed_at))}"
            + (f", seen {SEEN_WORDS.get(c.review.shown_in, escape(c.review.shown_in))}" if c.review.shown_in else "")
        )
    return "<br>".join(rows)
