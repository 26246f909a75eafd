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
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from ..decision import NO_DECISION, Decision
from ..pipeline import CellResult, ScanItem
from . import events as ev
from . import rules
from .cell import Cell, ReviewChange, Step
from .kinds import CellStatus, ReviewAction, ReviewCommand
from .progress import ReviewProgress
from .rules import CaseCounts, threshold_in_use
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
Listener = Callable[[ev.CaseEvent], None]


# ------------------------------------------------------------------------------------------ document


def _checked_name(name: str | None) -> str:
    """A reviewer's or signer's name with runs of spaces collapsed; ValueError (:class:`.audit.RecordRefused`)
    when it holds control characters: refused here, before the window shows a change the store would refuse."""
    from .audit import check_name

    return check_name(str(name or ""))


class CaseDocument(ReviewProgress):
    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.started = utc_now()
        self.cases: dict[str, Case] = {}  # root -> Case, in opening order
        self.cells: list[Cell] = []
        self._by_key: dict[str, Cell] = {}
        self.opened: dict[str, bool] = {}  # what was opened (path -> is a folder), what a restore re-scans
        self.facts: dict[str, ModelFacts] = {}  # model name -> facts of its latest card
        self.model_name: str | None = None  # the current model's name (its facts: ``current``)
        self.thresholds: dict[str, float] = {}  # model -> threshold the user set (absent: the card's)
        self.exported_at = ""
        self.unexported = False  # reviews or threshold changed since the last export
        self._exported_reviews: dict[str, Review] | None = None  # the reviews of the last export (None: a
        #                                                            loaded document: those made before it)
        self._undo: list[Step] = []
        self._redo: list[Step] = []
        self._steps = 0
        self._listeners: list[Listener] = []
        self.revision = 0

    # --- events ---------------------------------------------------------------------------------------
    def subscribe(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(event)`` after every change; returns the function that unsubscribes."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _emit(self, event: Event) -> None:
        self.revision += 1  # any change: an export taken at an earlier revision does not cover it
        for fn in list(self._listeners):
            fn(event)

    # --- cases and cells ------------------------------------------------------------------------------
    def case_of_root(self, root: str | Path) -> Case:
        """The case of an opened root, created with a unique display name on first use.  A case *is* its
        root (the key of :attr:`cases`, and each cell's :attr:`Cell.root`); the display name only labels it."""
        key = str(root)
        case = self.cases.get(key)
        if case is None:
            case = self.cases[key] = Case(key, self.unique_name(key))
            self._emit(ev.CaseAdded(key))
        return case

    def unique_name(self, root: str, wanted: str = "") -> str:
        """A display name for the case of ``root`` that no other case of the document has: ``wanted`` (a
        stored name; default the folder's name), else "name (parent)", else "name (parent) 2", ..."""
        p = Path(root)
        used = {c.name for r, c in self.cases.items() if r != root}
        name = wanted or p.name or root
        if name in used:
            name = f"{p.name or name} ({p.parent.name or p.parent})"
        base, n = name, 2
        while name in used:
            name, n = f"{base} {n}", n + 1
        return name

    def case_named(self, name: str) -> Case | None:
        return next((c for c in self.cases.values() if c.name == name), None)

    def set_sample_id(self, case: Case, sample_id: str) -> None:
        """Raises ValueError while the case is signed off (the id is part of what was signed)."""
        sample_id = " ".join(sample_id.split())
        if case.signoff is not None and sample_id != case.sample_id:
            raise ValueError(f"{case.label} is signed off: reopen it to change its sample id")
        if sample_id != case.sample_id:
            case.sample_id = sample_id
            self.unexported = True
            self._emit(ev.CaseAdded(case.root))

    def note_opened(self, path: str, is_dir: bool) -> None:
        if path not in self.opened:
            self.opened[path] = is_dir
            self._emit(ev.PathOpened(path))

    def cell(self, key: str) -> Cell | None:
        return self._by_key.get(key)

    def add_items(self, items: Iterable[ScanItem], *, loading: bool = False) -> list[Cell]:
        """Cells for scanned items not already in the document (by path); returns the new ones.  New images
        in a signed-off case reopen it (:meth:`_reopen_signed`), except while a store is ``loading``."""
        new = []
        for it in items:
            key = str(it.path)
            if key in self._by_key:
                continue
            case = self.case_of_root(it.root)
            c = Cell(it.path, it.root, it.folder, case.name, it)
            self._apply_model(c)
            self._by_key[key] = c
            self.cells.append(c)
            new.append(c)
        if new:
            self._emit(ev.CellsAdded(tuple(new)))
            if not loading:
                self._reopen_signed(new, "new image(s) added after the sign-off")
        return new

    def clear(self, by: str = "") -> None:
        """Close every case: this document no longer shows them.  Closing closes the view only: the case store
        keeps the whole record (nothing is deleted), logs who closed it and when, and follows this document no
        further (what is opened next belongs in a new record)."""
        by = _checked_name(by)
        self.cases.clear()
        self.cells = []
        self._by_key.clear()
        self.opened.clear()
        self._undo.clear()
        self._redo.clear()
        self.unexported = False
        self._exported_reviews = {}
        self.shown.clear()
        self._emit(ev.Cleared(by, utc_now()))

    def cells_of(self, case: Case | str | None) -> Iterator[Cell]:
        """The cells of one case (a :class:`Case`, its root or its display name; None: every cell), by root:
        two cases never pool their cells, whatever they are called.  An unknown case has none."""
        if case is None:
            return iter(self.cells)
        found = case if isinstance(case, Case) else (self.cases.get(str(case)) or self.case_named(str(case)))
        if found is None:
            return iter(())
        root = Path(found.root)
        return (c for c in self.cells if c.root == root)

    # --- models, thresholds, decisions -----------------------------------------------------------------
    @property
    def current(self) -> ModelFacts | None:
        return self.facts.get(self.model_name) if self.model_name else None

    @property
    def threshold(self) -> float | None:
        f = self.current
        return None if f is None else threshold_in_use(f.threshold, self.thresholds.get(f.name))

    def threshold_for(self, name: str) -> float | None:
        f = self.facts.get(name)
        return None if f is None else threshold_in_use(f.threshold, self.thresholds.get(name))

    def set_model(self, facts: ModelFacts) -> list[Cell]:
        """Make ``facts`` the current model.  Returns the cells it has no valid result for (to classify):
        none yet, or one from another version of the card (its card sha256 differs)."""
        self.facts[facts.name] = facts
        self.model_name = facts.name
        self._emit(ev.ModelChanged(facts))
        self._redecide()
        return self.unclassified()

    def unclassified(self) -> list[Cell]:
        return [c for c in self.cells if c.result is None]

    def set_threshold(self, value: float) -> None:
        f = self.current
        if f is None:
            return
        value = float(value)
        if abs(value - self.thresholds.get(f.name, f.threshold)) < 1e-9:
            return
        if abs(value - f.threshold) < 1e-9:
            self.thresholds.pop(f.name, None)
        else:
            self.thresholds[f.name] = value
        self.unexported = True
        self._emit(ev.ThresholdChanged(f, value, f.name in self.thresholds))
        self._redecide()

    def _apply_model(self, c: Cell) -> None:
        f = self.current
        r = c.results.get(f.name) if f is not None else None
        if r is not None and f is not None and r.card_sha256 != f.card_sha256:
            r = None  # a result of an earlier card version: classified again
        c.result = r
        self._decide(c, f)

    def _decide(self, c: Cell, f: ModelFacts | None) -> None:
        r = c.result
        if r is None or r.status != CellStatus.OK or f is None:
            c.prediction, c.threshold, c.flagged = None, None, False
            c.decision = None if r is None or f is None else NO_DECISION
            return
        thr = self.thresholds.get(f.name, f.threshold)
        c.decision = d = Decision.of(r.p_all, thr, f.review_margin, r.members_disagree, r.qc)
        c.prediction, c.flagged = d.prediction, d.flagged
        c.threshold = thr

    def _redecide(self) -> None:
        for c in self.cells:
            self._apply_model(c)
        self._emit(ev.DecisionsChanged(tuple(self.cells)))

    # --- results --------------------------------------------------------------------------------------
    def add_results(self, facts: ModelFacts, pairs: Sequence[tuple[Cell, CellResult]]) -> None:
        """Results of ``facts``'s model for these cells.  A review of an image whose content changed
        (another sha256) is set aside as stale, not applied."""
        self.facts.setdefault(facts.name, facts)
        stored, stale = [], []
        for c, cr in pairs:
            r = Result.of(cr, facts)
            if cr.status == CellStatus.OK and not (cr.p_all is not None and math.isfinite(cr.p_all)):
                r = Result(facts.name, facts.card_sha256, cr.sha256, CellStatus.ERROR, "model output not finite")
            c.results[facts.name] = r
            stored.append((c, r))
            if facts.name == self.model_name:
                self._apply_model(c)
            rv = c.review
            if rv is not None and r.status == CellStatus.OK and r.sha256 and rv.sha256 != r.sha256:
                c.stale, c.review = rv, None
                stale.append(c)
        self._emit(ev.ResultsStored(tuple(c for c, _ in stored), facts, tuple(stored)))
        if stale:
            self._emit(ev.StaleFound(tuple(stale)))
            self._reopen_signed(stale, "reviewed image(s) changed on disk after the sign-off")

    def content_changed(self, cells: Iterable[Cell]) -> list[Cell]:
        """These images changed on disk since they were classified (another sha256): their results are
        dropped (classified again) and their reviews set aside as stale, not applied."""
        changed = []
        for c in cells:
            if not c.results and c.review is None:
                continue
            c.results.clear()
            if c.review is not None:
                c.stale, c.review = c.review, None
            self._apply_model(c)
            changed.append(c)
        if changed:
            self._emit(ev.StaleFound(tuple(changed), content_changed=True))
            self._reopen_signed(changed, "image(s) changed on disk after the sign-off")
        return changed

    def signed_cases_touched(self, cells: Iterable[Cell]) -> dict[str, list[Cell]]:
        """root -> the given cells that belong to a signed-off case."""
        by_case: dict[str, list[Cell]] = {}
        for c in cells:
            case = self.cases.get(str(c.root))
            if case is not None and case.signoff is not None:
                by_case.setdefault(case.root, []).append(c)
        return by_case

    def _reopen_signed(self, cells: Sequence[Cell], what: str) -> None:
        """A signed-off case whose set of images or whose pixels changed is no longer what was signed: it is
        reopened, with the reason logged, so it is reviewed (and signed) again.  The same rule as the CLI's,
        which refuses such a change unless ``--reopen REASON`` is given."""
        for root, changed in self.signed_cases_touched(cells).items():
            names = ", ".join(c.file for c in changed[:3]) + (
                f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            )
            self.reopen(self.cases[root], "LeukoScan (automatic)", f"{what}: {names}")

    # --- reviews --------------------------------------------------------------------------------------
    def review(
        self, cells: Iterable[Cell], kind: ReviewCommand | str, reviewer: str = "", at: str | None = None
    ) -> Step | None:
        """``kind``: a label ("ALL" | "HEM" | an exclusion, :func:`.rules.excluded_label`) or a
        :class:`ReviewCommand`: ACCEPT (what the cell shows: the model's class, or the QC exclusion of an image that
        failed the quality check) | CLEAR.  Cells that are not classified are skipped, as are those of a signed-off case (:meth:`locked`) and those whose review would not
        change.  One step (undoable), or None (also when every cell given is locked)."""
        if kind not in tuple(ReviewCommand) and not rules.is_review_label(kind):
            raise ValueError(f"unknown review action {kind!r}")
        reviewer = _checked_name(reviewer)
        if kind != ReviewCommand.CLEAR and not reviewer.strip():
            raise ValueError("a review needs a reviewer")
        at = at or utc_now()
        f = self.current
        signed = self._signed_names()
        changes = []
        for c in cells:
            r = c.result
            if r is None or r.status != CellStatus.OK or c.case in signed:
                continue
            if kind == ReviewCommand.CLEAR:
                new = None
            else:
                # "accept" confirms what the cell shows now: the model's class, or the exclusion of an image that
                # failed the quality check (accepting must never turn a not-a-cell image into a counted blast)
                label = rules.final_label(c.prediction, None, c.qc) if kind == ReviewCommand.ACCEPT else str(kind)
                new = Review(
                    label or "",
                    reviewer.strip(),
                    at,
                    r.sha256,
                    f.name if f else "",
                    f.version if f else "",
                    c.prediction,
                    c.p_all,
                    self.shown.get(c.key, ""),
                )
            old = c.review
            if (old is None and new is None) or (
                old is not None and new is not None and old.label == new.label and old.reviewer == new.reviewer
            ):
                continue
            changes.append(ReviewChange(c, old, new))
        if not changes:
            return None

        def stack(step: Step) -> None:
            self._undo.append(step)
            self._redo.clear()

        return self._apply_step(ReviewAction.REVIEW, changes, reviewer.strip(), at, stack)

    def _apply_step(
        self,
        action: ReviewAction,
        changes: Sequence[ReviewChange],
        reviewer: str = "",
        at: str | None = None,
        stack: Callable[[Step], None] | None = None,
    ) -> Step:
        """Apply ``changes`` as one step; ``stack`` updates the undo/redo stacks *before* the event goes
        out, so listeners see can_undo/can_redo as they are after the step."""
        self._steps += 1
        for ch in changes:
            ch.cell.review = ch.new
        self.unexported = True
        step = Step(self._steps, action, tuple(changes), reviewer, at or utc_now())
        if stack is not None:
            stack(step)
        self._emit(ev.ReviewsChanged(tuple(ch.cell for ch in changes), step))
        return step

    @property
    def can_undo(self) -> bool:
        """There is a step to undo and it touches no signed-off case."""
        return bool(self._undo) and not self._step_locked(self._undo[-1])

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and not self._step_locked(self._redo[-1])

    def _step_locked(self, step: Step) -> bool:
        signed = self._signed_names()
        return bool(signed) and any(
            ch.cell.case in signed for ch in step.changes if self._by_key.get(ch.cell.key) is ch.cell
        )

    def _still(self, cell: Cell, now: Review | None, back: Review | None) -> bool:
        """A change can be undone/redone only on the same cell, still holding what the step left there, and
        never to put a review of another image content back (a stale review stays set aside)."""
        if self._by_key.get(cell.key) is not cell or cell.review != now:
            return False
        return back is None or (cell.result is not None and back.sha256 == cell.result.sha256)

    def undo(self, reviewer: str = "") -> Step | None:
        """Revert the last review step (a new "undo" event; the log keeps both and who undid it).
        None, with nothing changed, when there is none or it touches a signed-off case's cells."""
        if not self._undo or self._step_locked(self._undo[-1]):
            return None
        step = self._undo.pop()
        live = [ch for ch in step.changes if self._still(ch.cell, ch.new, ch.old)]
        return self._apply_step(
            ReviewAction.UNDO,
            [ReviewChange(ch.cell, ch.new, ch.old) for ch in reversed(live)],
            reviewer.strip(),
            stack=lambda _s: self._redo.append(step),
        )

    def redo(self, reviewer: str = "") -> Step | None:
        """Apply the last undone step again (None, as :meth:`undo`, when none or locked)."""
        if not self._redo or self._step_locked(self._redo[-1]):
            return None
        step = self._redo.pop()
        live = [ch for ch in step.changes if self._still(ch.cell, ch.old, ch.new)]
        return self._apply_step(ReviewAction.REDO, live, reviewer.strip(), stack=lambda _s: self._undo.append(step))

    def load_history(self, steps: list[Step], redo: list[Step], last_step: int = 0) -> None:
        """Undo/redo stacks rebuilt from the store's event log (restore); ``last_step``: the highest step
        number in the log, so new steps keep unique numbers."""
        self._undo, self._redo = list(steps), list(redo)
        self._steps = max([s.number for s in steps + redo] + [self._steps, last_step])

    def mark_exported(self, at: str | None = None) -> None:
        self.exported_at = at or utc_now()
        self.unexported = False
        self._exported_reviews = {c.key: c.review for c in self.cells if c.review is not None}
        self._emit(ev.Exported(self.exported_at))

    def unexported_reviews(self) -> int:
        """How many cells' reviews were made, changed or cleared since the last export (0 when nothing is
        unexported): what closing would leave out of every report.  For a document loaded from a store, the
        reviews made after its last export (``exported_at``)."""
        if not self.unexported:
            return 0
        base = self._exported_reviews
        if base is None:
            return sum(
                1
                for c in self.cells
                if c.review is not None and (not self.exported_at or (c.review.reviewed_at or "") > self.exported_at)
            )
        return sum(1 for c in self.cells if c.review != base.get(c.key))

    def note_closed(self, at: str | None = None) -> None:
        """The window showing this document closed normally (its store is then no orphan to restore)."""
        self._emit(ev.Closed(at or utc_now()))

    # --- sign-off -------------------------------------------------------------------------------------
    def _case(self, case: Case | str) -> Case:
        """A case given as a :class:`Case`, its root or its display name."""
        if isinstance(case, Case):
            return case
        found = self.cases.get(str(case)) or self.case_named(str(case))
        if found is None:
            raise KeyError(f"no case {case!r} in the document")
        return found

    def _signed_names(self) -> set[str]:
        return {c.name for c in self.cases.values() if c.signoff is not None}

    def locked(self, cell: Cell) -> bool:
        """The cell's case is signed off: its review cannot be changed (nor undone, nor redone)."""
        case = self.case_named(cell.case)
        return case is not None and case.signoff is not None

    def signed_off_elsewhere(self) -> list[Case]:
        """Signed-off cases whose verdict no longer rests on the current model and threshold."""
        now = self._basis()
        return [
            c
            for c in self.cases.values()
            if c.signoff is not None and c.signoff.basis and rules.model_basis(c.signoff.basis) != now
        ]

    def _basis(self, case: Case | None = None) -> str:
        """What a verdict rests on now: the model, its version and the threshold; with ``case``, also the exact
        images it covers (:func:`.rules.cell_set`)."""
        f = self.current
        basis = f"{f.name} {f.version}, threshold {self.threshold:.3f}" if f is not None else ""
        if case is not None:
            basis += "; " + rules.cell_set(c.sha256 for c in self.cells_of(case.name))
        return basis

    def signoff_mismatch(self, case: Case | str) -> str:
        """ "" when the case's images are the ones its sign-off covered; else what differs (in words)."""
        case = self._case(case)
        if case.signoff is None:
            return ""
        return rules.signoff_mismatch(case.signoff.basis, (c.sha256 for c in self.cells_of(case.name)))

    def signoff_of(self, case: Case | str) -> SignOff | None:
        """The sign-off of a case (given as its display name, root or :class:`Case`); None when not signed
        off or unknown."""
        try:
            return self._case(case).signoff
        except KeyError:
            return None

    @property
    def signoffs(self) -> dict[str, SignOff]:
        """root -> sign-off of every signed-off case (what the reports take, keyed like their ``root``)."""
        return {c.root: c.signoff for c in self.cases.values() if c.signoff is not None}

    def can_sign_off(self, case: Case | str) -> tuple[bool, str]:
        """(True, "") when the case can be signed off, else (False, why in words): it has no cells, cells
        not classified yet, ALL calls that no person confirmed (:func:`.rules.blast_unconfirmed`), flagged
        cells not reviewed yet (:func:`.rules.review_open`), no sample id (a signed report names one patient), or is
        signed off."""
        case = self._case(case)
        if case.signoff is not None:
            so = case.signoff
            return False, f"the case is already signed off by {so.by}" + (f" on {so.at}" if so.at else "")
        cells = list(self.cells_of(case.name))
        if not cells:
            return False, "the case has no cells"
        why = rules.signoff_refusal(*self.left_before_signoff(case), sample_id=case.sample_id)
        return (False, why) if why else (True, "")

    def sign_off(self, case: Case | str, by: str, comment: str = "", at: str | None = None) -> SignOff:
        """Sign the case off: its reviews are locked until :meth:`reopen`.  Raises ValueError (the reason
        of :meth:`can_sign_off`, or a missing name) when it cannot be signed off."""
        case = self._case(case)
        by = _checked_name(by)
        if not by:
            raise ValueError("a sign-off needs the name of who signs off")
        ok, why = self.can_sign_off(case)
        if not ok:
            raise ValueError(f"{case.label} cannot be signed off: {why}")
        basis = self._basis(case)
        so = SignOff(by, at or utc_now(), str(comment or "").strip(), basis)
        case.signoff = so
        self.unexported = True
        self._emit(ev.SignOffChanged(case.root, ev.SignOffAction.SIGN_OFF, so.by, so.at, so.comment, basis))
        return so

    def reopen(self, case: Case | str, by: str, reason: str, at: str | None = None) -> SignOff:
        """Undo a sign-off (its reviews can be changed again); who and why are required and logged.
        Returns the sign-off removed.  Raises ValueError when the case is not signed off, or ``by`` or
        ``reason`` is empty."""
        case = self._case(case)
        by = _checked_name(by)
        reason = str(reason or "").strip()
        if case.signoff is None:
            raise ValueError(f"{case.label} is not signed off")
        if not by:
            raise ValueError("reopening a case needs the name of who reopens it")
        if not reason:
            raise ValueError("reopening a signed-off case needs a reason")
        old, case.signoff = case.signoff, None
        self.unexported = True
        self._emit(ev.SignOffChanged(case.root, ev.SignOffAction.REOPEN, by, at or utc_now(), reason))
        return old

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
        from collections import Counter

        n = Counter(rules.exclusion_reason(c.final_label) for c in self.cells_of(case) if c.excluded)
        return dict(n.most_common())

    @property
    def sample_ids(self) -> dict[str, str]:
        """root -> the sample id typed for that case (cases without one are absent)."""
        return {c.root: c.sample_id for c in self.cases.values() if c.sample_id}

    @property
    def reviews(self) -> dict[str, Review]:
        return {c.key: c.review for c in self.cells if c.review is not None}
