"""The reviews part of the case document (:class:`ReviewHistory`): a review records what the person set, who, when
and what the model said at that moment; review changes form undoable steps, and undo and redo are new steps (the
audit trail is only ever appended to).  A signed-off case's cells are locked (:class:`~.signoffs.SignOffs`): a
review skips them, an undo or redo of a step that touches them is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from . import events as ev
from . import rules
from .cell import Cell, ReviewChange, Step
from .core import DocumentCore, checked_name
from .decisions import Decisions
from .kinds import CellStatus, ReviewAction, ReviewCommand
from .signoffs import SignOffs
from .values import Review, utc_now

__all__ = ["ReviewHistory"]


class ReviewHistory:
    """``undo_steps`` / ``redo_steps``: the stacks, the last step on top."""

    def __init__(self, core: DocumentCore, decisions: Decisions, signoffs: SignOffs) -> None:
        self.core = core
        self.decisions = decisions
        self.signoffs = signoffs
        self.undo_steps: list[Step] = []
        self.redo_steps: list[Step] = []
        self._steps = 0  # the highest step number given

    def review(
        self, cells: Iterable[Cell], kind: ReviewCommand | str, reviewer: str = "", at: str | None = None
    ) -> Step | None:
        """``kind``: a label ("ALL" | "HEM" | an exclusion, :func:`.rules.excluded_label`) or a
        :class:`ReviewCommand`: ACCEPT (what the cell shows: the model's class, or the QC exclusion of an image that
        failed the quality check) | CLEAR.  Cells that are not classified are skipped, as are those of a signed-off
        case (:meth:`.SignOffs.locked`) and those whose review would not change.  One step (undoable), or None (also
        when every cell given is locked)."""
        if kind not in tuple(ReviewCommand) and not rules.is_review_label(kind):
            raise ValueError(f"unknown review action {kind!r}")
        reviewer = checked_name(reviewer).strip()
        if kind != ReviewCommand.CLEAR and not reviewer:
            raise ValueError("a review needs a reviewer")
        at = at or utc_now()
        signed = self.signoffs.signed_names()
        changes = []
        for c in cells:
            if c.status != CellStatus.OK or c.case in signed:
                continue
            new = None if kind == ReviewCommand.CLEAR else self._review_of(c, kind, reviewer, at)
            old = c.review
            if (old is None and new is None) or (
                old is not None and new is not None and old.label == new.label and old.reviewer == new.reviewer
            ):
                continue
            changes.append(ReviewChange(c, old, new))
        if not changes:
            return None

        def stack(step: Step) -> None:
            self.undo_steps.append(step)
            self.redo_steps.clear()

        return self._apply_step(ReviewAction.REVIEW, changes, reviewer, at, stack)

    def _review_of(self, c: Cell, kind: ReviewCommand | str, reviewer: str, at: str) -> Review:
        """The review ``kind`` sets on a classified cell.  ACCEPT confirms what the cell shows now: the model's class,
        or the exclusion of an image that failed the quality check (accepting must never turn a not-a-cell image
        into a counted blast)."""
        f, r = self.decisions.current, c.result
        label = rules.final_label(c.prediction, None, c.qc) if kind == ReviewCommand.ACCEPT else str(kind)
        return Review(
            label or "",
            reviewer,
            at,
            r.sha256 if r is not None else "",
            f.name if f else "",
            f.version if f else "",
            c.prediction,
            c.p_all,
            self.core.shown.get(c.key, ""),
        )

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
        self.core.unexported = True
        step = Step(self._steps, action, tuple(changes), reviewer, at or utc_now())
        if stack is not None:
            stack(step)
        self.core.emit(ev.ReviewsChanged(tuple(ch.cell for ch in changes), step))
        return step

    @property
    def can_undo(self) -> bool:
        """There is a step to undo and it touches no signed-off case."""
        return bool(self.undo_steps) and not self._step_locked(self.undo_steps[-1])

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_steps) and not self._step_locked(self.redo_steps[-1])

    def _step_locked(self, step: Step) -> bool:
        signed = self.signoffs.signed_names()
        return bool(signed) and any(ch.cell.case in signed for ch in step.changes if self.core.holds(ch.cell))

    def _still(self, cell: Cell, now: Review | None, back: Review | None) -> bool:
        """A change can be undone/redone only on the same cell, still holding what the step left there, and
        never to put a review of another image content back (a stale review stays set aside)."""
        if not self.core.holds(cell) or cell.review != now:
            return False
        return back is None or (cell.result is not None and back.sha256 == cell.result.sha256)

    def undo(self, reviewer: str = "") -> Step | None:
        """Revert the last review step (a new "undo" event; the log keeps both and who undid it).
        None, with nothing changed, when there is none or it touches a signed-off case's cells."""
        if not self.can_undo:
            return None
        step = self.undo_steps.pop()
        live = [ch for ch in step.changes if self._still(ch.cell, ch.new, ch.old)]
        return self._apply_step(
            ReviewAction.UNDO,
            [ReviewChange(ch.cell, ch.new, ch.old) for ch in reversed(live)],
            reviewer.strip(),
            stack=lambda _s: self.redo_steps.append(step),
        )

    def redo(self, reviewer: str = "") -> Step | None:
        """Apply the last undone step again (None, as :meth:`undo`, when none or locked)."""
        if not self.can_redo:
            return None
        step = self.redo_steps.pop()
        live = [ch for ch in step.changes if self._still(ch.cell, ch.old, ch.new)]
        return self._apply_step(
            ReviewAction.REDO, live, reviewer.strip(), stack=lambda _s: self.undo_steps.append(step)
        )

    def load_history(self, steps: list[Step], redo: list[Step], last_step: int = 0) -> None:
        """Undo/redo stacks rebuilt from the store's event log (restore); ``last_step``: the highest step
        number in the log, so new steps keep unique numbers."""
        self.undo_steps, self.redo_steps = list(steps), list(redo)
        self._steps = max([s.number for s in steps + redo] + [self._steps, last_step])

    def clear(self) -> None:
        """No step to undo or redo (the cases were closed)."""
        self.undo_steps.clear()
        self.redo_steps.clear()

    @property
    def reviews(self) -> dict[str, Review]:
        return {c.key: c.review for c in self.core.cells if c.review is not None}
