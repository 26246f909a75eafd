"""The window's view of the case document: the engine's Qt-free :class:`CaseDocument` and its events as
Qt signals.

The document (and the case store that listens to it) lives outside the widgets; the widgets only
show it.  Besides :mod:`gui.service`, this is the one GUI module that imports the engine (import-linter
contract), so the few engine names the widgets need are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.case import events as ev
from engine.case.cell import Step
from engine.case.document import ERROR, OK, PENDING, CaseDocument, Cell, ModelFacts, utc_now
from engine.case.images import ImageChange, case_images
from engine.case.kinds import ReviewCommand
from engine.case.rules import (
    EXCLUDED,
    EXCLUSION_REASONS,
    LABELS,
    excluded_label,
    exclusion_reason,
    model_basis,
    p_all_text,
)
from engine.domain.labels import Call
from engine.localtime import local_time

from .tasks import Relay

ALL_CASES = "All cases"

__all__ = [
    "ALL_CASES",
    "Call",
    "ERROR",
    "EXCLUDED",
    "EXCLUSION_REASONS",
    "LABELS",
    "ImageChange",
    "OK",
    "PENDING",
    "Cell",
    "DocumentBridge",
    "ReviewCommand",
    "case_images",
    "excluded_label",
    "exclusion_reason",
    "local_time",
    "model_basis",
    "p_all_text",
    "utc_now",
]


class DocumentBridge(QObject):
    """Owns the current document (and its store); re-emits the document's events as signals."""

    replaced = Signal()  # a whole new document (restore, open case store, close all)
    # list[Cell] as object: PySide's Signal(list) copies a list into a QVariantList (13 ms for 20,000 cells)
    cellsAdded = Signal(object)  # list[Cell]
    cellsChanged = Signal(object)  # list[Cell]: results, reviews or stale reviews changed
    decisionsChanged = Signal()  # every cell's class/flag (model or threshold changed)
    casesChanged = Signal()
    thresholdChanged = Signal()
    reviewsChanged = Signal(Step)  # a review, undo or redo
    staleFound = Signal(ev.StaleFound)  # reviews set aside: content changed on disk (else a new sha256)
    storeFailed = Signal(str)  # a write to the case store failed (emitted on the GUI thread)

    def __init__(self, doc: CaseDocument | None = None, parent=None) -> None:
        super().__init__(parent)
        self.doc = doc or CaseDocument()
        self.store = None
        self._relay = Relay(self)  # the store's writer thread reports its errors through it
        self._unsubscribe = self.doc.subscribe(self._event)

    def adopt(self, doc: CaseDocument, store=None):
        """Show ``doc`` from now on (its store, if given, is attached and written to).  Returns the
        previous store, detached but not closed (the caller closes it off the GUI thread)."""
        previous = self.detach_store(close=False)
        self._unsubscribe()
        self.doc = doc
        self._unsubscribe = doc.subscribe(self._event)
        if store is not None:
            self.attach_store(store)
        self.replaced.emit()
        return previous

    def attach_store(self, store) -> None:
        self.detach_store()
        self.store = store
        store.attach(self.doc, on_error=lambda message: self._relay.call(self.storeFailed.emit, message))

    def detach_store(self, close: bool = True):
        store, self.store = self.store, None
        if store is not None:
            store.detach()
            if close:
                store.close()
        return None if close else store

    def locked(self, cell: Cell) -> bool:
        """The cell's case is signed off in the document shown now: its review cannot change."""
        return self.doc.locked(cell)

    def facts_of(self, classifier) -> ModelFacts:
        return ModelFacts.of(classifier)

    def _event(self, e: ev.CaseEvent) -> None:
        HANDLERS[type(e)](self, e)

    def _reviews(self, e: ev.ReviewsChanged) -> None:
        self.cellsChanged.emit(list(e.cells))
        self.reviewsChanged.emit(e.step)

    def _stale(self, e: ev.StaleFound) -> None:
        self.cellsChanged.emit(list(e.cells))
        self.staleFound.emit(e)


def _nothing(bridge: DocumentBridge, e: ev.CaseEvent) -> None:
    """Events the widgets do not show (they change only what the store keeps)."""


#: Every document event type -> what the window does with it (tests/gui: every type has an entry).
HANDLERS: dict[type[ev.CaseEvent], Callable[[DocumentBridge, Any], object]] = {
    ev.CaseAdded: lambda b, e: b.casesChanged.emit(),
    ev.SignOffChanged: lambda b, e: b.casesChanged.emit(),
    ev.CellsAdded: lambda b, e: b.cellsAdded.emit(list(e.cells)),
    ev.ResultsStored: lambda b, e: b.cellsChanged.emit(list(e.cells)),
    ev.ReviewsChanged: DocumentBridge._reviews,
    ev.StaleFound: DocumentBridge._stale,
    ev.DecisionsChanged: lambda b, e: b.decisionsChanged.emit(),
    ev.ThresholdChanged: lambda b, e: b.thresholdChanged.emit(),
    ev.Cleared: lambda b, e: b.replaced.emit(),
    ev.ModelChanged: _nothing,
    ev.PathOpened: _nothing,
    ev.Exported: _nothing,
    ev.Closed: _nothing,
}
