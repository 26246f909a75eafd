"""Keeps the widgets in step with the document shown: the cell rows, the case filter, the preview, the summary
and the window title.  The document's signals (:class:`gui.document.DocumentBridge`) come in; nothing goes
back into the document from here.

The summary walks every cell, so it is refreshed at most every ``SUMMARY_REFRESH_MS`` (every 400 ms with
5,000 cells or more, or while a run is going), however many changes arrive."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

SUMMARY_REFRESH_MS = 150


class DocumentViews(QObject):
    titleChanged = Signal(str)

    def __init__(self, bridge, cell_model, browser, filters, side, reviews, runs, welcome, parent=None) -> None:
        super().__init__(parent)
        self.bridge, self.cell_model, self.browser, self.filters = bridge, cell_model, browser, filters
        self.side, self.reviews, self.runs, self.welcome = side, reviews, runs, welcome
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SUMMARY_REFRESH_MS)
        self._timer.timeout.connect(self.refresh_summary)
        bridge.cellsAdded.connect(self._cells_added)
        bridge.cellsChanged.connect(self._cells_changed)
        bridge.decisionsChanged.connect(self._decisions_changed)
        bridge.casesChanged.connect(self._cases_changed)
        bridge.replaced.connect(self._replaced)
        bridge.reviewsChanged.connect(lambda _step: self.schedule_refresh())
        browser.selectionChanged.connect(self.update_preview)
        reviews.changed.connect(self.update_preview)
        filters.changed.connect(self.schedule_refresh)

    def _show_cells(self, shown: bool) -> None:
        self.welcome.setVisible(not shown)
        self.browser.setVisible(shown)

    def _cells_added(self, cells: list) -> None:
        self.cell_model.add_cells(cells)
        if cells and not self.browser.isVisible():
            self._show_cells(True)
            if not self.browser.gallery.currentIndex().isValid():
                self.browser.select_row(0)
            self.browser.gallery.setFocus()
        self.schedule_refresh()

    def _cases_changed(self) -> None:
        self.filters.set_cases(self.bridge.doc.cases.values())
        self.schedule_refresh()

    def _replaced(self) -> None:
        """A whole new document (restore, open case store, close all): the rows are rebuilt from it."""
        self.cell_model.clear()
        self.filters.reset_cases()
        self._cases_changed()
        doc = self.bridge.doc
        self._show_cells(bool(doc.cells))
        if doc.cells:
            self.cell_model.add_cells(list(doc.cells))
            self.browser.select_row(0)
            self.browser.gallery.setFocus()

    def _cells_changed(self, cells: list) -> None:
        row_of = self.cell_model.row_of
        self.cell_model.rows_changed([r for r in (row_of(c.key) for c in cells) if r is not None])
        cur = self.side.preview.cell
        if cur is not None and any(c is cur for c in cells):
            self.update_preview()
        self.schedule_refresh()

    def _decisions_changed(self) -> None:
        self.cell_model.all_changed()
        self.update_preview()
        self.schedule_refresh()

    def update_preview(self) -> None:
        self.side.preview.show_cell(self.browser.current_cell(), self.browser.selection_size())

    def schedule_refresh(self) -> None:
        if not self._timer.isActive():
            slow = len(self.cell_model.cells) >= 5000 or self.runs.running
            self._timer.setInterval(SUMMARY_REFRESH_MS if not slow else 400)
            self._timer.start()

    def refresh_summary(self) -> None:
        doc, case, cur = self.bridge.doc, self.browser.proxy.case, self.browser.current_cell()
        self.side.show_document(doc, case, self.reviews.flagged_progress(case or (cur.case if cur else None)))
        n, shown = len(self.cell_model.cells), self.browser.proxy.rowCount()
        self.filters.shown_label.setText(f"{shown} of {n} cells shown" if shown != n else f"{n} cells")
        title = "LeukoScan"
        if doc.cases:
            title += " — " + ", ".join(c.label for c in list(doc.cases.values())[:3])
        self.titleChanged.emit(title + (" *" if doc.unexported else ""))
