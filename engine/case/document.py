"""The case document: everything about the opened cases, in one Qt-free object.

It holds the cases, the cells (path, sha256, one result per model), the threshold per model (remembered
across model switches), and the reviews.  A review records what the person set, who, when and what the
model said at that moment; the final label and "overridden" are derived from it (:mod:`.rules`).
The current model's decision per cell (class, flagged) is derived too, recomputed when the model or the
threshold changes, never stored.

Every change is announced as an :class:`Event` to plain callbacks (:meth:`CaseDocument.subscribe`):
the GUI turns them into Qt signals, the case store (:mod:`.store`) writes them to SQLite.  Review
changes form undoable steps; undo/redo are new events (the audit trail is only ever appended to).

A case is signed off (:meth:`CaseDocument.sign_off`) once every cell is classified and every flagged cell
reviewed; while it is, the reviews of its cells are locked (a review skips them, an undo or redo of a step
that touches them is refused) until it is reopened (:meth:`CaseDocument.reopen`, with a reason).

:class:`CaseDocument` is a thin facade: the shared state is :class:`~.core.DocumentCore`, and three parts stand on
it, each testable alone: :attr:`~CaseDocument.decisions` (:class:`~.decisions.Decisions`: models, thresholds,
decisions), :attr:`~CaseDocument.signoff` (:class:`~.signoffs.SignOffs`) and :attr:`~CaseDocument.history`
(:class:`~.history.ReviewHistory`: reviews, undo, redo).  The facade keeps the one public API the GUI
(:mod:`gui.document`), the store and the CLI use, and applies the rules that span parts (new or changed images
reopen a signed-off case).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..pipeline import CellResult, ScanItem
from . import events as ev
from . import rules
from .cell import Cell, ReviewChange, Step
from .core import DocumentCore, Listener, checked_name
from .decisions import Decisions
from .history import ReviewHistory
from .kinds import CellStatus, ReviewCommand
from .rules import CaseCounts
from .signoffs import SignOffs
from .values import Case, ModelFacts, Result, Review, SignOff, card_sha256, cards_digest, utc_now

__all__ = [
    "ERROR",
    "OK",
    "PENDING",
    "Case",
    "CaseDocument",
    "Cell",
    "Event",
    "Listener",
    "ModelFacts",
    "Result",
    "Review",
    "ReviewChange",
    "SignOff",
    "Step",
    "card_sha256",
    "cards_digest",
    "utc_now",
]

PENDING, OK, ERROR = CellStatus.PENDING, CellStatus.OK, CellStatus.ERROR  # the names the GUI reads

Event = ev.CaseEvent  # the base of the typed events (engine/case/events.py)


class CaseDocument(DocumentCore):
    def __init__(self, session_id: str | None = None) -> None:
        super().__init__(session_id)
        self.decisions = Decisions(self)
        self.signoff = SignOffs(self, self.decisions)
        self.history = ReviewHistory(self, self.decisions, self.signoff)

    # --- the rules that span parts --------------------------------------------------------------------
    def add_items(self, items: Iterable[ScanItem], *, loading: bool = False) -> list[Cell]:
        """Cells for scanned items not already in the document (by path); returns the new ones.  New images
        in a signed-off case reopen it, except while a store is ``loading``."""
        new = self.new_cells(items)
        for c in new:
            self.decisions.apply_model(c)
        if new:
            self.emit(ev.CellsAdded(tuple(new)))
            if not loading:
                self.signoff.reopen_touched(new, "new image(s) added after the sign-off")
        return new

    def add_results(self, facts: ModelFacts, pairs: Sequence[tuple[Cell, CellResult]]) -> None:
        """Results of ``facts``'s model for these cells (:meth:`.Decisions.add_results`); a signed-off case with a
        reviewed image whose content changed is reopened."""
        stale = self.decisions.add_results(facts, pairs)
        if stale:
            self.signoff.reopen_touched(stale, "reviewed image(s) changed on disk after the sign-off")

    def content_changed(self, cells: Iterable[Cell]) -> list[Cell]:
        """These images changed on disk since they were classified (:meth:`.Decisions.content_changed`); a
        signed-off case holding one is reopened."""
        changed = self.decisions.content_changed(cells)
        if changed:
            self.signoff.reopen_touched(changed, "image(s) changed on disk after the sign-off")
        return changed

    def clear(self, by: str = "") -> None:
        """Close every case: this document no longer shows them.  Closing closes the view only: the case store
        keeps the whole record (nothing is deleted), logs who closed it and when, and follows this document no
        further (what is opened next belongs in a new record)."""
        by = checked_name(by)
        self.forget_cells()
        self.history.clear()
        self.emit(ev.Cleared(by, utc_now()))

    # --- counts ---------------------------------------------------------------------------------------
    def counts(self, total_name: str = "All cases") -> list[CaseCounts]:
        """One :class:`CaseCounts` per case in opening order, then a total (sums only) with several."""
        per: dict[Path, CaseCounts] = {Path(c.root): CaseCounts(c.name) for c in self.cases.values()}  # by root
        for c in self.cells:
            cc = per.get(c.root)
            if cc is None:
                cc = per[c.root] = CaseCounts(c.case)
            c.count_into(cc)
        return rules.with_total([cc for cc in per.values() if cc.cells], total_name)

    def exclusion_reasons(self, case: str | None = None) -> dict[str, int]:
        """Why cells of ``case`` (display name; None: every case) do not count, most frequent first."""
        n = Counter(rules.exclusion_reason(c.final_label) for c in self.cells_of(case) if c.excluded)
        return dict(n.most_common())

    # --- decisions (:class:`.Decisions`) ----------------------------------------------------------------
    @property
    def facts(self) -> dict[str, ModelFacts]:
        return self.decisions.facts

    @property
    def model_name(self) -> str | None:
        return self.decisions.model_name

    @property
    def thresholds(self) -> dict[str, float]:
        return self.decisions.thresholds

    @thresholds.setter
    def thresholds(self, value: dict[str, float]) -> None:
        self.decisions.thresholds = value

    @property
    def current(self) -> ModelFacts | None:
        return self.decisions.current

    @property
    def threshold(self) -> float | None:
        return self.decisions.threshold

    def threshold_for(self, name: str) -> float | None:
        return self.decisions.threshold_for(name)

    def set_model(self, facts: ModelFacts) -> list[Cell]:
        return self.decisions.set_model(facts)

    def unclassified(self) -> list[Cell]:
        return self.decisions.unclassified()

    def set_threshold(self, value: float) -> None:
        self.decisions.set_threshold(value)

    # --- reviews (:class:`.ReviewHistory`) --------------------------------------------------------------
    def review(
        self, cells: Iterable[Cell], kind: ReviewCommand | str, reviewer: str = "", at: str | None = None
    ) -> Step | None:
        return self.history.review(cells, kind, reviewer, at)

    @property
    def can_undo(self) -> bool:
        return self.history.can_undo

    @property
    def can_redo(self) -> bool:
        return self.history.can_redo

    def undo(self, reviewer: str = "") -> Step | None:
        return self.history.undo(reviewer)

    def redo(self, reviewer: str = "") -> Step | None:
        return self.history.redo(reviewer)

    def load_history(self, steps: list[Step], redo: list[Step], last_step: int = 0) -> None:
        self.history.load_history(steps, redo, last_step)

    @property
    def reviews(self) -> dict[str, Review]:
        return self.history.reviews

    # --- sign-off (:class:`.SignOffs`) ------------------------------------------------------------------
    def locked(self, cell: Cell) -> bool:
        return self.signoff.locked(cell)

    def signed_off_elsewhere(self) -> list[Case]:
        return self.signoff.signed_off_elsewhere()

    def signoff_mismatch(self, case: Case | str) -> str:
        return self.signoff.signoff_mismatch(case)

    def signoff_of(self, case: Case | str) -> SignOff | None:
        return self.signoff.signoff_of(case)

    @property
    def signoffs(self) -> dict[str, SignOff]:
        return self.signoff.signoffs

    def signed_cases_touched(self, cells: Iterable[Cell]) -> dict[str, list[Cell]]:
        return self.signoff.signed_cases_touched(cells)

    def can_sign_off(self, case: Case | str) -> tuple[bool, str]:
        return self.signoff.can_sign_off(case)

    def sign_off(self, case: Case | str, by: str, comment: str = "", at: str | None = None) -> SignOff:
        return self.signoff.sign_off(case, by, comment, at)

    def reopen(self, case: Case | str, by: str, reason: str, at: str | None = None) -> SignOff:
        return self.signoff.reopen(case, by, reason, at)
