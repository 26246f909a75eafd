"""Review actions: label, accept, clear, undo/redo, and walking the cells that still need review.

The labels go into the case document (one undoable step per action, bulk ones included); the document
decides what "accepted", "overridden", "review open" and "blast unconfirmed" mean.  In *review-flagged* mode
every label moves on to the next cell of the case that is left before sign-off: a flagged cell nobody reviewed,
or an ALL call nobody confirmed (a blast call is the finding: every one is seen by a person).
"""

from __future__ import annotations

from typing import Protocol, assert_never

from PySide6.QtCore import QObject, Signal

from .document import OK, ReviewCommand, excluded_label
from .review_command import Accept, Clear, Exclude, ReviewRequest, SetLabel


class ReviewPrompts(Protocol):
    """The questions a review may ask (gui.prompts.Prompts; a test gives its own answers)."""

    def ask_reviewer(self) -> str: ...

    def confirm_bulk_accept(self, n: int, left: list) -> bool: ...

    def ask_exclusion_reason(self, n: int) -> str: ...


class LeftFilter(Protocol):
    """The Show filter, which the walk widens when it hides every cell left before sign-off (gui.filter_bar)."""

    def show_left_before_signoff(self) -> None: ...


class ReviewActions(QObject):
    status = Signal(str, int)  # status bar text, ms
    changed = Signal()  # a review, undo or redo was applied (refresh previews, titles, undo actions)

    def __init__(self, browser, bridge, settings, prompts: ReviewPrompts, filters: LeftFilter, parent=None) -> None:
        """``prompts`` asks the reviewer's name, confirms a bulk accept of cells nobody looked at and asks why cells
        are excluded; ``filters`` is widened when the walk needs it."""
        super().__init__(parent)
        self.browser = browser
        self.bridge = bridge
        self.settings = settings
        self.prompts = prompts
        self.filters = filters
        self.flagged_mode = False

    @property
    def doc(self):
        return self.bridge.doc

    def reviewer(self) -> str:
        name = self.settings.reviewer
        if not name:
            name = self.prompts.ask_reviewer()
            if name:
                self.settings.reviewer = name
        return name

    def apply(self, request: ReviewRequest) -> int:
        """What the preview's buttons, the Review menu and the label keys ask; returns the cells changed."""
        match request:
            case SetLabel(call):
                return self._review(str(call))
            case Accept():
                return self._review(ReviewCommand.ACCEPT)
            case Clear():
                return self._review(ReviewCommand.CLEAR)
            case Exclude(reason):
                return self._exclude(reason)
            case _:
                assert_never(request)

    def _exclude(self, reason: str | None) -> int:
        """Exclude the selected cells from % blasts (not a cell, artefact, duplicate ...) with a reason (asked
        when not given); one undoable step like any review."""
        n = sum(1 for c in self.browser.selected_cells() if c.status == OK)
        if not n:
            self.status.emit("Select classified cells to exclude.", 5000)
            return 0
        if reason is None:
            reason = self.prompts.ask_exclusion_reason(n)
        if not str(reason or "").strip():
            self.status.emit("Not excluded: a reason is needed (it is kept in the review history).", 6000)
            return 0
        try:
            label = excluded_label(reason)
        except ValueError as exc:
            self.status.emit(f"Not excluded: {exc}.", 8000)
            return 0
        return self._review(label)

    def _review(self, kind: str) -> int:
        """``kind``: "ALL" | "HEM" | an exclusion label | ReviewCommand.ACCEPT | .CLEAR on the selected cells.  Returns
        cells changed."""
        b = self.browser
        cells = [c for c in b.selected_cells() if c.status == OK]
        if not cells:
            self.status.emit("Select classified cells to review (error and pending cells cannot be reviewed).", 5000)
            return 0
        locked = [c for c in cells if self.doc.locked(c)]
        if locked:
            cases = ", ".join(sorted({c.case for c in locked}))
            self.status.emit(
                f"{cases} is signed off: its reviews are locked (Review ▸ Reopen case to change them).", 8000
            )
            cells = [c for c in cells if not self.doc.locked(c)]
            if not cells:
                return 0
        if len(cells) > 1:  # a bulk action confirms what the gallery page shows now, nothing scrolled past
            on_page = self.browser.cells_on_page(cells)
            if on_page:
                self.doc.mark_shown(on_page, "gallery page")
        unseen = self.doc.unseen(cells)
        if unseen:
            skipped = {c.key for c in unseen}
            cells = [c for c in cells if c.key not in skipped]
            self.status.emit(self._unseen_text(len(unseen), bool(cells)), 12000)
            if not cells:
                return 0
        left = [c for c in cells if c.left_before_signoff]
        flagged = sum(1 for c in left if c.review_open)
        if (
            kind == ReviewCommand.ACCEPT
            and len(cells) > 1
            and left
            and not self.prompts.confirm_bulk_accept(len(cells), left)
        ):
            self.status.emit("Bulk accept cancelled.", 4000)
            return 0
        reviewer = self.reviewer()  # also for a clear: the audit trail says who did every change
        if not reviewer:
            self.status.emit("A reviewer name is needed (File ▸ Settings).", 6000)
            return 0
        cur = b.current_cell()
        cur_row = b.gallery.currentIndex().row() if b.gallery.currentIndex().isValid() else 0
        try:
            step = self.doc.review(cells, kind, reviewer)
        except ValueError as exc:  # e.g. a reviewer name with control characters (File > Settings)
            self.status.emit(f"Not reviewed: {exc}.", 10000)
            return 0
        if step is None:
            self.status.emit("Nothing changed: the selected cells already have that review.", 4000)
            return 0
        n = len(step.changes)
        if unseen:
            pass  # the status line says what was left out (a second message would hide it)
        elif len(cells) > 1:
            what_of: dict[str, str] = {
                ReviewCommand.CLEAR: "Cleared the review of",
                ReviewCommand.ACCEPT: "Accepted the model's class for",
            }
            what = what_of.get(kind, f"Labelled {kind}:")
            self.status.emit(
                f"{what} {n} cell(s)" + (f", {flagged} of them flagged" if flagged else "") + ". Ctrl+Z undoes it.",
                8000,
            )
        elif kind != ReviewCommand.CLEAR:
            self._advance(cur, cur_row)
        self.changed.emit()
        return n

    @staticmethod
    def _unseen_text(n: int, some_done: bool) -> str:
        from .browser import READABLE_TILE_PX

        return (
            f"{'Reviewed the cells on screen, but ' if some_done else 'Nothing reviewed: '}{n} flagged cell(s) or ALL "
            f"call(s) were never shown at a readable size (tiles >= {READABLE_TILE_PX} px): page down and accept "
            "again, or walk them (F)."
        )

    def _advance(self, cur, cur_row: int) -> None:
        """After labelling one cell: the next flagged one (review-flagged mode), else stay in place or
        move on (the reviewed cell may have left the filtered view)."""
        b = self.browser
        if self.flagged_mode:
            case = cur.case if cur is not None else None
            still = b.proxy.proxy_row_of(cur.key) if cur is not None else None
            if still is None and b.proxy.rowCount():
                # the labelled cell left the filtered view and the rows moved up: the cell now at its row is the
                # next one in view order; stepping on from there would skip it
                b.select_row(min(cur_row, b.proxy.rowCount() - 1) - 1 if cur_row > 0 else b.proxy.rowCount() - 1)
            if not self._walk_on(case):
                self.status.emit(self._walk_done_text(case), 8000)
            return
        still = b.proxy.proxy_row_of(cur.key) if cur is not None else None
        if still is None:
            b.select_row(min(cur_row, b.proxy.rowCount() - 1))
        elif self.settings.auto_advance:
            b.select_row(min(still + 1, b.proxy.rowCount() - 1))

    def undo(self) -> None:
        step = self.doc.undo(self.reviewer()) if self.doc.can_undo else None
        self._after_history(step, "Undone")

    def redo(self) -> None:
        step = self.doc.redo(self.reviewer()) if self.doc.can_redo else None
        self._after_history(step, "Redone")

    def _after_history(self, step, verb: str) -> None:
        if step is None:
            self.status.emit(f"Nothing to {verb.lower()[:-2]} (or its case is signed off).", 4000)
            return
        if step.changes:
            self.browser.select_key(step.changes[0].cell.key)
        self.status.emit(f"{verb}: the review of {len(step.changes)} cell(s).", 5000)
        self.changed.emit()

    def next_open(self, backwards: bool = False) -> bool:
        cur = self.browser.current_cell()
        case = cur.case if (self.flagged_mode and cur is not None) else None
        want = _left if self.flagged_mode else None
        if self.flagged_mode and not backwards:
            if self._walk_on(case):
                return True
            self.status.emit(self._walk_done_text(case), 8000)
            return False
        if self.browser.next_open(backwards, case, want) is not None:
            return True
        hidden = sum(1 for c in self.doc.cells if (want or _open)(c) and (case is None or c.case == case))
        msg = "No cell left to review" + (f" in this view ({hidden} hidden by the filter)." if hidden else ".")
        self.status.emit(msg, 6000)
        return False

    def _walk_on(self, case: str | None) -> bool:
        """Select the next cell of ``case`` left before sign-off; when the filters hide every one that is left, they
        are widened to show them (the walk covers what sign-off needs, not what the Show filter happens to show)."""
        b = self.browser
        if b.next_open(case=case, want=_left) is not None:
            return True
        hidden = sum(1 for c in self.doc.cells_of(case) if _left(c))
        if not hidden:
            return False
        self.filters.show_left_before_signoff()
        self.status.emit(f"Show ▸ Left before sign-off: the filter hid {hidden} cell(s) the walk needs.", 8000)
        return b.next_open(case=case, want=_left) is not None

    def _walk_done_text(self, case: str | None) -> str:
        """What the walk says when nothing is left in it: "can be signed off" only when sign-off would be allowed."""
        name = case or "the case"
        found = self.doc.case_named(case) if case else None
        ok, why = self.doc.can_sign_off(found) if found is not None else (False, "")
        done = f"Every flagged cell and every ALL call of {name} has been looked at"
        if ok:
            return done + ": it can be signed off."
        pending, blasts, open_ = self.doc.left_before_signoff(case)
        if blasts or open_:  # hidden from the walk (another case, or no case to walk): never "done"
            return f"Nothing left to walk in this view, but {why}."
        return done + (f"; before sign-off: {why}." if why else ".")

    def set_flagged_mode(self, on: bool) -> None:
        self.flagged_mode = bool(on)
        if on:
            cur = self.browser.current_cell()
            if cur is None or not cur.left_before_signoff:
                self.next_open()

    def flagged_progress(self, case: str | None) -> str:
        """'12 / 55 flagged cells reviewed · 3 ALL calls (not flagged) to confirm' for the case (or all cases): the
        counts of the sign-off refusal (:meth:`CaseDocument.left_before_signoff`), so the two never disagree."""
        flagged = [c for c in self.doc.cells_of(case) if c.flagged and c.status == OK]
        _pending, blasts, open_ = self.doc.left_before_signoff(case)
        return f"{len(flagged) - open_} / {len(flagged)} flagged cells reviewed" + (
            f" · {blasts} ALL call{'s' if blasts != 1 else ''} (not flagged) to confirm" if blasts else ""
        )


def _left(c) -> bool:
    return c.left_before_signoff


def _open(c) -> bool:
    return c.review_open
