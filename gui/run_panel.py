"""The classification side of the window: starts a run whenever cells wait for the current model, shows
its progress (bar, rate and ETA, Cancel) in the status bar and says how it ended.

Runs themselves are :class:`gui.run_controller.RunController`'s; this class decides *when* one starts (not
while another model is being loaded, not while the window closes) and words what happened.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton

from .run_controller import RunController, RunFinished, RunProgress, RunState

log = logging.getLogger("leukoscan.gui")


class ChosenModel(Protocol):
    """What the panel needs of the model chooser: the model loaded, and the one chosen (maybe still loading)."""

    @property
    def classifier(self) -> Any: ...

    @property
    def wanted(self) -> str | None: ...


class RunPanel(QObject):
    status = Signal(str, int)  # status bar text, ms (0: until replaced)
    runningChanged = Signal(bool)
    summaryDue = Signal()  # counts changed with the run: the summary should follow now

    def __init__(self, runs: RunController, bridge, model_chooser: ChosenModel, prompts, parent=None) -> None:
        super().__init__(parent)
        self.runs, self.bridge, self.model_chooser, self.prompts = runs, bridge, model_chooser, prompts
        self.last_run: RunFinished | None = None
        self._stale_reviews = 0  # reviews set aside during a run: reported once it ends
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setFixedWidth(230)  # fixed sizes: a progress update never relayouts the status bar
        self.progress.setFormat("%v / %m cells")
        self.progress.hide()
        self.eta_label = QLabel()
        self.eta_label.setFixedWidth(self.eta_label.fontMetrics().horizontalAdvance("9999.9 cells/s · ETA 999:59") + 8)
        self.eta_label.hide()
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the classification (Esc). Cells already classified are kept.")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.hide()
        runs.stateChanged.connect(self._state)
        runs.progressed.connect(self._progress)
        runs.finished.connect(self._finished)
        runs.failed.connect(self._failed)
        bridge.staleFound.connect(self._stale_found)

    def widgets(self) -> tuple:
        return (self.progress, self.eta_label, self.cancel_btn)

    def maybe_start(self) -> None:
        """Classify what waits for the current model, unless another one is being loaded (a restore, a
        switch: classified once it is there) or the window closes."""
        clf = self.model_chooser.classifier
        if self.runs.closed or clf is None:
            return
        if self.bridge.doc.model_name != clf.name or self.model_chooser.wanted != clf.name:
            return
        if self.runs.start():
            self.status.emit(f"Classifying {self.runs.total} cells with {clf.display_name} on {clf.device_label}…", 0)

    def classify_remaining(self) -> None:
        if self.runs.running:
            return
        if not self.bridge.doc.unclassified():
            self.status.emit("Every cell is classified.", 4000)
        self.maybe_start()

    def cancel(self) -> None:
        if self.runs.running:
            self.runs.cancel()
            self.status.emit("Cancelling…", 0)

    def _state(self, state: RunState) -> None:
        running = state != RunState.IDLE
        for w in self.widgets():
            w.setVisible(running)
        self.runningChanged.emit(running)

    def _progress(self, p: RunProgress) -> None:
        self.progress.setMaximum(max(1, p.total))
        self.progress.setValue(p.done)
        self.eta_label.setText(p.rate)
        self.summaryDue.emit()  # the summary keeps pace with the bar

    def _finished(self, run: RunFinished) -> None:
        self.last_run = run
        clf = self.model_chooser.classifier
        log.info(
            "run %s: %d of %d cells in %.1f s with %s",
            "cancelled" if run.cancelled else "finished",
            run.done,
            run.total,
            run.seconds,
            clf.name if clf else "?",
        )
        if run.cancelled:
            self.status.emit(
                f"Cancelled: {run.done} of {run.total} cells classified. Classification ▸ Classify "
                "remaining (Ctrl+R) continues.",
                15000,
            )
        else:
            rate = run.done / run.seconds if run.seconds > 0 else 0
            self.status.emit(f"Classified {run.done} cells in {run.seconds:.1f} s ({rate:.1f} cells/s).", 10000)
        if self._stale_reviews:
            self._report_stale()
        self.summaryDue.emit()
        if not run.cancelled:
            self.maybe_start()

    def _failed(self, message: str) -> None:
        self.prompts.show_message(
            "Classification stopped",
            f"The model failed while classifying:\n\n{message}\n\n"
            "Cells classified so far are kept. Try another model or Classify remaining.",
        )

    def _stale_found(self, found) -> None:
        """``found``: the document's StaleFound event (its cells, whether their content changed on disk)."""
        self._stale_reviews += sum(1 for c in found.cells if c.stale is not None)
        if found.content_changed:
            self.maybe_start()
        if self._stale_reviews and not self.runs.running:
            self._report_stale()

    def _report_stale(self) -> None:
        n, self._stale_reviews = self._stale_reviews, 0
        self.prompts.show_message(
            "Some reviews were not re-applied",
            f"{n} reviewed image(s) changed on disk since they were reviewed (different "
            "content): their reviews were set aside (kept in the case store's history), not "
            "applied.",
        )
