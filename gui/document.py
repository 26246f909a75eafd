"""The window's view of the case document: the engine's Qt-free :class:`CaseDocument` and its events as
Qt signals.

The document (and the case store that listens to it) lives outside the widgets; the widgets only
show it.  Besides :mod:`gui.service`, this is the one GUI module that imports the engine (import-linter
contract), so the few engine names the widgets need are re-exported here.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.case.document import ERROR, OK, PENDING, CaseDocument, Cell, Event, ModelFacts, utc_now
from engine.case.rules import LABELS, p_all_text

ALL_CASES = "All cases"

__all__ = ["ALL_CASES", "ERROR", "LABELS", "OK", "PENDING", "Cell", "DocumentBridge", "p_all_text", "utc_now"]


class DocumentBridge(QObject):
    """Owns the current document (and its store); re-emits the document's events as signals."""

    replaced = Signal()  # a whole new document (restore, open case store, close all)
    cellsAdded = Signal(object)  # [Cell]
    cellsChanged = Signal(object)  # [Cell]: results, reviews or stale reviews changed
    decisionsChanged = Signal()  # every cell's class/flag (model or threshold changed)
    casesChanged = Signal()
    thresholdChanged = Signal()
    reviewsChanged = Signal(object)  # Step: a review, undo or redo
    staleFound = Signal(object, bool)  # [Cell], content changed on disk (else a new result's sha256 differs)
    storeFailed = Signal(str)  # a write to the case store failed (from the writer thread, queued)

    def __init__(self, doc: CaseDocument | None = None, parent=None) -> None:
        super().__init__(parent)
        self.doc = doc or CaseDocument()
        self.store = None
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
        store.attach(self.doc, on_error=self.storeFailed.emit)  # a Qt signal: safe from the writer thread

    def detach_store(self, close: bool = True):
        store, self.store = self.store, None
        if store is not None:
            store.detach()
            if close:
                store.close()
        return None if close else store

    def facts_of(self, classifier) -> ModelFacts:
        return ModelFacts.of(classifier)

    def _event(self, e: Event) -> None:
        k = e.kind
        if k == "cells":
            self.cellsAdded.emit(list(e.cells))
        elif k in ("results",):
            self.cellsChanged.emit(list(e.cells))
        elif k == "reviews":
            self.cellsChanged.emit(list(e.cells))
            self.reviewsChanged.emit(e.step)
        elif k == "stale":
            self.cellsChanged.emit(list(e.cells))
            self.staleFound.emit(list(e.cells), bool(e.data.get("content_changed")))
        elif k == "decisions":
            self.decisionsChanged.emit()
        elif k == "threshold":
            self.thresholdChanged.emit()
        elif k in ("cases", "signoff"):
            self.casesChanged.emit()
        elif k == "cleared":
            self.replaced.emit()
