"""The closed sets of words the case record uses, as enums instead of bare strings.

Each is a :class:`~enum.StrEnum`: a member *is* its stored string (``CellStatus.OK == "ok"``, ``str()`` and
f-strings give ``"ok"``), so the SQLite store, the CSV reports and the hash chain hold exactly the text they held
before, and a value read back from them compares equal to the member.  A misspelt member is an AttributeError
(and a mypy error) where a misspelt string silently matched nothing.

This module imports nothing of the engine, so every layer (the pipeline, the reports, the case document, the GUI
through :mod:`gui.document`) can use it without an import cycle.
"""

from __future__ import annotations

from enum import StrEnum


class CellStatus(StrEnum):
    """Where a cell's classification stands (the ``status`` column of the per-cell CSV and of ``results``)."""

    PENDING = "pending"  # found, not classified yet (an interrupted run)
    OK = "ok"  # classified
    ERROR = "error"  # could not be classified (unreadable image, model output not finite)


class ReviewCommand(StrEnum):
    """What :meth:`~engine.case.document.CaseDocument.review` does besides setting a label (ALL, HEM or an
    exclusion)."""

    ACCEPT = "accept"  # confirm what the cell shows: the model's class, or the QC exclusion
    CLEAR = "clear"  # remove the review


class ReviewAction(StrEnum):
    """``review_events.action``: what one row of the review log records."""

    REVIEW = "review"  # a review set or cleared (one undoable step)
    UNDO = "undo"
    REDO = "redo"
    STALE = "stale"  # the image changed after it was reviewed: the review was set aside (not undoable)
    IMPORT = "import"  # a review written whole (a document that did not come from this store, an upgrade)
    CLOSED = "closed"  # marker: the cases were closed; the restored history starts after it
    UPGRADE = "upgrade"  # marker: a version-2 file was upgraded to the hash chain


#: The actions of a review log row that are part of the undo/redo history (the rest are markers or not undoable).
STEP_ACTIONS = (ReviewAction.REVIEW, ReviewAction.UNDO, ReviewAction.REDO)


class SignOffAction(StrEnum):
    """``case_events.action``: a case signed off or reopened."""

    SIGN_OFF = "sign_off"
    REOPEN = "reopen"


class RecordAction(StrEnum):
    """``record_events.action`` (schema version 4): a change of what a report rests on besides reviews and
    sign-offs, appended to the hash chain with the write itself (:mod:`engine.case.ledger`)."""

    STATE = "state"  # the whole record as found when a version-3 file was upgraded (its rows vouched from then on)
    CASES = "cases"  # cases added, or their display name / sample id changed
    CELLS = "cells"  # images added to a case
    MODELS = "models"  # model facts stored
    RESULTS = "results"  # classification results stored (a new one replaces that of the same cell and model)
    DROP_RESULTS = "drop_results"  # the images changed on disk: their results were dropped (classified again)
    THRESHOLD = "threshold"  # one model's threshold set (or back to the card's: null)
    THRESHOLDS = "thresholds"  # every threshold the user set, written whole
    MODEL = "model"  # the current model
    CLOSE = "close"  # the cases were closed in the window (a view closed: nothing in the record changes)
    ARCHIVE = "archive"  # a case archived: kept whole, marked as no longer worked on (never removed)


class StoreErrorKind(StrEnum):
    """Why a case file cannot be used (``StoreError.kind``): a front end decides by it, never by the message."""

    MISSING = "missing"  # no such file
    NOT_SQLITE = "not_sqlite"  # not a LeukoScan case file (another file, an empty one, another database)
    DAMAGED = "damaged"  # a case file that SQLite or the schema check cannot read
    NEWER = "newer"  # written by a newer LeukoScan
    IO = "io"  # the operating system refused (a folder, no permission, a full disk)
    SIGNED_OFF = "signed_off"  # a headless run would change a signed-off case (no reason to reopen given)
    NOT_THE_CASE = "not_the_case"  # a folder's images are another sample's than the case stored for it

    @property
    def movable(self) -> bool:
        """Worth moving aside (``schema.move_aside``) so a new file can take its name: not a case file, or damaged."""
        return self in (StoreErrorKind.NOT_SQLITE, StoreErrorKind.DAMAGED)
