"""One image of a case (:class:`Cell`) and the review steps made on cells (:class:`ReviewChange`, :class:`Step`).

A cell holds every model's result; the current model's class and flag are set on it by the document
(:class:`~engine.case.document.CaseDocument`), and everything else a front end shows (final label, open review,
unconfirmed blast) is derived from it by the case rules (:mod:`.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..decision import Decision
from ..pipeline import ScanItem
from . import rules
from .kinds import CellStatus, ReviewAction
from .rules import CaseCounts
from .values import Result, Review

__all__ = ["Cell", "ReviewChange", "Step"]


class Cell:
    """One image.  ``result``/``decision`` (and from it ``prediction``/``flagged``)/``threshold`` are the current
    model's, kept up to date by the document (:class:`~.decisions.Decisions`); ``review`` is the person's (None when
    stale or absent)."""

    __slots__ = (
        "path",
        "key",
        "root",
        "folder",
        "case",
        "item",
        "results",
        "result",
        "prediction",
        "threshold",
        "flagged",
        "decision",
        "review",
        "stale",
        "size",
        "mtime_ns",
    )

    def __init__(self, path: Path | str, root: Path | str, folder: str, case: str, item: ScanItem | None = None):
        self.path = path if isinstance(path, Path) else Path(path)
        self.key = str(self.path)
        self.root = root if isinstance(root, Path) else Path(root)
        self.folder = folder
        self.case = case  # the case's display name
        self.item = item if item is not None else ScanItem(self.path, self.root, folder)
        self.results: dict[str, Result] = {}
        self.result: Result | None = None
        self.prediction: str | None = None
        self.threshold: float | None = None
        self.flagged = False  # flagged for review by the current model (reviewed or not)
        self.decision: Decision | None = None  # the current model's, whole (class, flag, why): what a report carries
        self.review: Review | None = None
        self.stale: Review | None = None  # a review of an image whose content has changed since
        self.size: int | None = None
        self.mtime_ns: int | None = None

    @property
    def file(self) -> str:
        return self.path.name

    @property
    def status(self) -> CellStatus:
        if self.result is None:
            return CellStatus.PENDING
        return CellStatus.OK if self.result.status == CellStatus.OK else CellStatus.ERROR

    @property
    def p_all(self) -> float | None:
        return None if self.result is None else self.result.p_all

    def p_text(self, digits: int = 2) -> str:
        """P(ALL) for display, never contradicting :attr:`prediction` (:func:`.rules.p_all_text`)."""
        p = self.p_all
        return "" if p is None else rules.p_all_text(p, self.prediction, self.threshold, digits)

    @property
    def error(self) -> str:
        return "" if self.result is None else (self.result.error or "")

    @property
    def qc(self) -> str:
        return "" if self.result is None or self.result.status != CellStatus.OK else self.result.qc

    @property
    def sha256(self) -> str:
        return self.result.sha256 if self.result is not None else ""

    @property
    def final_label(self) -> str | None:
        """ALL, HEM, or "EXCLUDED: reason" (:func:`.rules.final_label`: a QC failure nobody labelled is
        excluded)."""
        return rules.final_label(self.prediction, self.review.label if self.review else None, self.qc)

    @property
    def excluded(self) -> bool:
        return self.status == CellStatus.OK and rules.label_class(self.final_label) == rules.EXCLUDED

    @property
    def overridden(self) -> bool:
        rv = self.review
        return rv is not None and rules.overridden(rv.label, rv.model_label)

    @property
    def review_open(self) -> bool:
        return rules.review_open(self.flagged, self.review is not None)

    @property
    def blast_unconfirmed(self) -> bool:
        """Counts as a blast and no person has confirmed it (:func:`.rules.blast_unconfirmed`)."""
        return self.status == CellStatus.OK and rules.blast_unconfirmed(self.final_label, self.review is not None)

    @property
    def left_before_signoff(self) -> bool:
        """What a person still has to look at before the case can be signed off: an open review or an
        unconfirmed blast call."""
        return self.status == CellStatus.OK and (self.review_open or self.blast_unconfirmed)

    def count_into(self, cc: CaseCounts) -> None:
        st = None if self.result is None else self.result.status
        cc.add(st, self.final_label, self.flagged, self.review is not None, bool(self.qc), self.overridden)


@dataclass(frozen=True)
class ReviewChange:
    """One cell's review before and after (None: no review)."""

    cell: Cell
    old: Review | None
    new: Review | None


@dataclass(frozen=True)
class Step:
    """One undoable review action (a bulk action is one step)."""

    number: int
    action: ReviewAction  # REVIEW | UNDO | REDO
    changes: tuple[ReviewChange, ...]
    reviewer: str = ""  # who did it (the audit trail: also who cleared, undid or redid)
    at: str = ""  # when (ISO 8601 UTC)
