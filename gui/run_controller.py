"""Classification runs: one at a time, with explicit states, results written into the case document.

The controller owns the queue of cells waiting for the current model and the one run in flight.  Its
state is ``idle`` | ``running`` | ``cancelling``; whoever needs the run to be over (export, close, a
model switch) asks :meth:`stop` and gets a definite answer, so no half-finished state can linger.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

IDLE, RUNNING, CANCELLING = "idle", "running", "cancelling"
ETA_AFTER_S = 3.0  # no ETA before this: the first batches include model warm-up and file-cache misses
RATE_SMOOTHING = 0.3  # exponential smoothing of the cells/s rate between progress updates


class RunController(QObject):
    stateChanged = Signal(str)
    progressed = Signal(int, int, str)  # done, total, "12.3 cells/s · ETA 0:42" ("" while unknown)
    finished = Signal(bool, int, int, float)  # cancelled, done, total, seconds
    failed = Signal(str)

    def __init__(self, service, bridge, parent=None) -> None:
        super().__init__(parent)
        self.service = service
        self.bridge = bridge
        self.state = IDLE
        self.job: int | None = None
        self.classifier = None
        self.facts = None
        self.batch_size = 16
        self.blocked = False  # while folders are still being added, or the window closes
        self._cells: list = []
        self._t0 = 0.0
        self._done = 0
        self._total = 0
        self._rate: float | None = None
        self._last = (0.0, 0)
        self._shown = 0.0
        service.resultsReady.connect(self._results)
        service.progress.connect(self._progress)
        service.runFinished.connect(self._finished)
        service.runFailed.connect(self._failed)
        bridge.replaced.connect(self.stop)  # a run's late results belong to the document it started on

    @property
    def total(self) -> int:
        """Cells in the run in flight (or the last one)."""
        return self._total

    @property
    def done(self) -> int:
        """Cells of that run classified so far."""
        return self._done

    @property
    def running(self) -> bool:
        return self.state != IDLE

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    def use(self, classifier, batch_size: int) -> None:
        """The model runs use from now on (a run of another model is stopped first)."""
        if self.classifier is not None and classifier is not self.classifier and self.running:
            self.stop()
        self.classifier = classifier
        self.facts = self.bridge.facts_of(classifier)
        self.batch_size = batch_size

    def start(self) -> bool:
        """Classify every cell of the document without a result of the current model.  False if there is
        nothing to do or a run cannot start now."""
        if self.running or self.classifier is None or self.blocked:
            return False
        cells = self.bridge.doc.unclassified()
        if not cells:
            return False
        self._cells = cells
        self._t0 = time.monotonic()
        self._done, self._total, self._rate, self._last, self._shown = 0, len(cells), None, (self._t0, 0), 0.0
        self._set_state(RUNNING)
        self.job = self.service.start_run([c.item for c in cells], self.classifier, self.batch_size)
        self.progressed.emit(0, len(cells), "starting…")
        return True

    def cancel(self) -> None:
        """Ask the run to stop (its cells done so far are kept); ``finished`` follows."""
        if self.state == RUNNING:
            self.service.cancel()
            self._set_state(CANCELLING)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the run now: cancel, wait for the worker, drop its late results.  Always ends idle."""
        if not self.running:
            return
        self.service.cancel()
        self.service.wait(timeout)
        self.job = None
        self._cells = []
        self._set_state(IDLE)

    # --- service signals --------------------------------------------------------------------------
    def _results(self, job: int, results: list) -> None:
        if job != self.job:
            return
        cells = self._cells
        self.bridge.doc.add_results(self.facts, [(cells[r.index], r) for r in results])

    def _progress(self, job: int, done: int, total: int) -> None:
        if job != self.job:
            return
        self._done, self._total = done, total
        now = time.monotonic()
        t_last, n_last = self._last
        if now - t_last >= 0.5 and done > n_last:  # a smoothed rate, not the run's average since warm-up
            inst = (done - n_last) / (now - t_last)
            self._rate = inst if self._rate is None else RATE_SMOOTHING * inst + (1 - RATE_SMOOTHING) * self._rate
            self._last = (now, done)
        if done < total and now - self._shown < 0.25:
            return  # the bar and ETA are redrawn at most 4 times a second
        self._shown = now
        self.progressed.emit(done, total, self.rate_text(now))

    def rate_text(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if self._rate is None or now - self._t0 < ETA_AFTER_S:
            return "estimating…"
        eta = (self._total - self._done) / max(self._rate, 1e-9)
        return f"{self._rate:.1f} cells/s · ETA {int(eta // 60)}:{int(eta % 60):02d}"

    def _finished(self, job: int, cancelled: bool, seconds: float) -> None:
        if job != self.job:
            return
        self.job = None
        self._cells = []
        self._set_state(IDLE)
        self.finished.emit(cancelled, self._done, self._total, seconds)

    def _failed(self, job: int, message: str) -> None:
        if job != self.job:
            return
        self.job = None
        self._cells = []
        self._set_state(IDLE)
        self.failed.emit(message)
