"""Review of cells (keyboard-first labels, bulk accept, navigation) and the live summary.
A mixin of :class:`gui.mainwindow.MainWindow` (through :class:`gui.casework.CaseWork`)."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel

from .cells import OK, Cell
from .session import ReviewRecord, utc_now
from .summary import ALL_CASES, count_cases

SUMMARY_REFRESH_MS = 150


class ReviewMixin:
    # ------------------------------------------------------------------------------ review
    def selected_cells(self) -> list[Cell]:
        sm = self.gallery.selectionModel()
        rows = sorted({i.row() for i in sm.selectedIndexes()})
        cells = [self.proxy.cell_at(r) for r in rows]
        if not cells:
            c = self.current_cell()
            cells = [c] if c is not None else []
        return [c for c in cells if c is not None]

    def current_cell(self) -> Cell | None:
        idx = self.gallery.currentIndex()
        return self.proxy.cell_at(idx.row()) if idx.isValid() else None

    def _reviewer(self) -> str:
        name = self.settings.reviewer
        if not name:
            name = self.ask_reviewer()
            if name:
                self.settings.reviewer = name
        return name

    def review_selected(self, kind: str) -> int:
        """``kind``: "ALL" | "HEM" | "accept" | "clear".  Returns the number of cells changed."""
        cells = [c for c in self.selected_cells() if c.status == OK]
        if not cells:
            self.statusBar().showMessage("Select classified cells to review (error and pending cells cannot be "
                                         "reviewed).", 5000)
            return 0
        if kind != "clear":
            reviewer = self._reviewer()
            if not reviewer:
                self.statusBar().showMessage("A reviewer name is needed (File ▸ Settings).", 6000)
                return 0
        cur = self.gallery.currentIndex()
        cur_row = cur.row() if cur.isValid() else 0
        cur_key = self.current_cell().key if self.current_cell() else None
        now = utc_now()
        changed = []
        for c in cells:
            if kind == "clear":
                if c.review is None:
                    continue
                c.review = None
                self.session.reviews.pop(c.key, None)
            else:
                label = c.prediction if kind == "accept" else kind
                c.review = ReviewRecord(label, reviewer, now, c.result.sha256, c.prediction, c.p_all)
                self.session.reviews[c.key] = c.review
            changed.append(self.model.row_of(c.key))
        if not changed:
            return 0
        self.session.unexported = True
        self.model.rows_changed([r for r in changed if r is not None])
        self._autosave()
        self._schedule_refresh()
        if len(cells) == 1 and kind != "clear":
            # the reviewed cell may have left the filtered view: stay at the same place, else advance
            still = self.proxy.proxy_row_of(cur_key) if cur_key else None
            if still is None:
                self._select_proxy_row(min(cur_row, self.proxy.rowCount() - 1))
            elif self.settings.auto_advance:
                self._select_proxy_row(min(still + 1, self.proxy.rowCount() - 1))
        self._update_preview()
        return len(changed)

    def next_needs_review(self, backwards: bool = False) -> bool:
        n = self.proxy.rowCount()
        if n == 0:
            return False
        cur = self.gallery.currentIndex()
        start = cur.row() if cur.isValid() else -1
        step = -1 if backwards else 1
        for k in range(1, n + 1):
            r = (start + step * k) % n
            c = self.proxy.cell_at(r)
            if c is not None and c.needs_review and c.review is None:
                self._select_proxy_row(r)
                return True
        hidden = sum(1 for c in self.model.cells if c.needs_review and c.review is None)
        msg = "No cell left to review" + (f" in this view ({hidden} hidden by the filter)." if hidden else ".")
        self.statusBar().showMessage(msg, 6000)
        return False

    def _select_proxy_row(self, row: int) -> None:
        if row < 0 or row >= self.proxy.rowCount():
            return
        idx = self.proxy.index(row, 0)
        self.gallery.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.gallery.scrollTo(idx)
        if self.tabs.currentWidget() is self.table:
            self.table.scrollTo(idx)

    def _update_preview(self) -> None:
        cells = self.gallery.selectionModel().selectedRows() if self.gallery.selectionModel() else []
        self.preview.show_cell(self.current_cell(), max(1, len(cells)))

    # ------------------------------------------------------------------------------ summary
    def _schedule_refresh(self) -> None:
        if not self._refresh_timer.isActive():
            # the summary walks every cell: refresh less often for very large sets
            slow = len(self.model.cells) >= 5000 or self.job is not None  # big sets, running classification
            self._refresh_timer.setInterval(SUMMARY_REFRESH_MS if not slow else 400)
            self._refresh_timer.start()

    def _refresh_summary(self) -> None:
        cells = self.model.cells
        self.summary.set_counts(count_cases(cells))
        case = self.proxy.case
        ps = [c.p_all for c in cells if c.status == OK and (case is None or c.case == case)]
        margin = self.classifier.review_margin if self.classifier else 0.0
        self.histogram.set_data(ps, self.threshold or 0.5, margin,
                                f"P(ALL) — {case or (ALL_CASES if len(self._case_of_root) > 1 else 'case')}"
                                f" ({len(ps)} cells)")
        self.preview.refresh()
        n, shown = len(cells), self.proxy.rowCount()
        self.shown_label.setText(f"{shown} of {n} cells shown" if shown != n else f"{n} cells")
        title = "LeukoScan"
        if self._case_of_root:
            title += " — " + ", ".join(list(self._case_of_root.values())[:3])
        if self.session.unexported:
            title += " *"
        self.setWindowTitle(title)

