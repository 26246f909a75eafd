"""Classification runs: one at a time, with explicit states, results written into the case document.

The controller owns the queue of cells waiting for the current model and the one run in flight (a
:class:`gui.tasks.Task` of the service).  Its state is a :class:`RunState`; whoever needs the run to be
over (export, close, a model switch) asks :meth:`stop` and gets a definite answer, so no half-finished
state can linger.  :meth:`stop` cancels the task, which disconnects it: a stopped run's late results
never arrive, so nothing here filters them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

from .service import RunBatch, RunEnd
from .tasks import Task


class CurrentModel(Protocol):
    """The one owner of the model that classifies (gui.model_chooser.ModelChooser): a run takes it when it starts."""

    @property
    def classifier(self) -> Any: ...


class RunSettings(Protocol):
    @property
    def batch_size(self) -> int: ...


class RunState(Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"  # Cancel was asked: the run ends at its next batch and says how far it got


@dataclass(frozen=True)
class RunProgress:
    """``progressed``: cells done of the run's total, and "12.3 cells/s · ETA 0:42" (or "estimating…")."""

    done: int
    total: int
    rate: str


@dataclass(frozen=True)
class RunFinished:
    """``finished``: a run ended (``cancelled``: by Cancel, before its last cell)."""

    cancelled: bool
    done: int
    total: int
    seconds: float


ETA_AFTER_S = 3.0  # no ETA before this: the first batches include model warm-up and file-cache misses
RATE_SMOOTHING = 0.3  # exponential smoothing of the cells/s rate between progress updates


class RunController(QObject):
    stateChanged = Signal(RunState)
    progressed = Signal(RunProgress)
    resultsStored = Signal(RunBatch)  # a batch of the run is in the document
    finished = Signal(RunFinished)
    failed = Signal(str)  # why the model stopped (the cells done before are kept)

    def __init__(self, service, bridge, model: CurrentModel, settings: RunSettings, parent=None) -> None:
        """``model`` says which model a run uses (read when it starts); ``settings`` its batch size."""
        super().__init__(parent)
        self.service = service
        self.bridge = bridge
        self.model = model
        self.settings = settings
        self.state = RunState.IDLE
        self.task: Task | None = None  # the run in flight
        self._facts: Any = None  # the model facts of the run in flight (its results are that model's)
        self._held = False  # folders are still being added (gui.opening): the run starts once they are in
        self._closed = False  # the window closes: no run starts any more
        self._cells: list = []
        self._t0 = 0.0
        self._done = 0
        self._total = 0
        self._rate: float | None = None
        self._last = (0.0, 0)
        self._shown = 0.0
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
        return self.state != RunState.IDLE

    def _set_state(self, state: RunState) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    @property
    def held(self) -> bool:
        """No run starts now: cells are still being added (:meth:`hold`)."""
        return self._held

    def hold(self) -> None:
        """Cells are being added (or checked before they are): no run starts until :meth:`release`."""
        self._held = True

    def release(self) -> None:
        self._held = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """The window closes: the run in flight stops and none starts any more."""
        self._closed = True
        self.stop()

    def start(self) -> bool:
        """Classify every cell of the document without a result of the current model.  False if there is
        nothing to do or a run cannot start now."""
        clf = self.model.classifier
        if self.running or clf is None or self._held or self._closed:
            return False
        cells = self.bridge.doc.unclassified()
        if not cells:
            return False
        self._facts = self.bridge.facts_of(clf)
        self._cells = cells
        self._t0 = time.monotonic()
        self._done, self._total, self._rate, self._last, self._shown = 0, len(cells), None, (self._t0, 0), 0.0
        self._set_state(RunState.RUNNING)
        self.task = self.service.start_run(
            [c.item for c in cells],
            clf,
            self.settings.batch_size,
            on_batch=self._batch,
            on_end=self._finished,
            on_error=self._failed,
        )
        self.progressed.emit(RunProgress(0, len(cells), "starting…"))
        return True

    def cancel(self) -> None:
        """Ask the run to stop (its cells done so far are kept); ``finished`` follows."""
        if self.state == RunState.RUNNING and self.task is not None:
            self.task.request_interrupt()
            self._set_state(RunState.CANCELLING)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the run now: cancel its task (nothing of it arrives after this), wait for the worker.
        Always ends idle."""
        if not self.running:
            return
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            task.wait(timeout)
        self._cells = []
        self._set_state(RunState.IDLE)

    # --- the run's task ---------------------------------------------------------------------------
    def _batch(self, batch: RunBatch) -> None:
        cells = self._cells
        if batch.results:
            self.bridge.doc.add_results(self._facts, [(cells[r.index], r) for r in batch.results])
        self._progress(batch.done, batch.total)
        self.resultsStored.emit(batch)

    def _progress(self, done: int, total: int) -> None:
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
        self.progressed.emit(RunProgress(done, total, self.rate_text(now)))

    def rate_text(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if self._rate is None or now - self._t0 < ETA_AFTER_S:
            return "estimating…"
        eta = (self._total - self._done) / max(self._rate, 1e-9)
        return f"{self._rate:.1f} cells/s · ETA {int(eta // 60)}:{int(eta % 60):02d}"

    def _finished(self, end: RunEnd) -> None:
        self.task = None
        self._cells = []
        self._set_state(RunState.IDLE)
        self.finished.emit(RunFinished(end.cancelled, self._done, self._total, end.seconds))

    def _failed(self, exc: BaseException) -> None:
        self.task = None
        self._cells = []
        self._set_state(RunState.IDLE)
        self.failed.emit(f"{type(exc).__name__}: {exc}")
