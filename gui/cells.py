"""The table of cells behind both the gallery and the table view (Qt model/view).

One :class:`CellModel` row per image of every opened case.  Rows are created as soon as a folder is
scanned (state "pending"), then filled in place as classification results stream in.  The gallery
(``QListView``) and the table (``QTableView``) share one :class:`CellFilterProxy`, so filtering,
sorting and selection are the same in both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, QTimer

from .document import (  # the case document's cells and display rule
    ERROR,
    OK,
    PENDING,
    Cell,
    exclusion_reason,
    local_time,
    p_all_text,
)

CellRole = Qt.ItemDataRole.UserRole + 1  # the Cell object
SortRole = Qt.ItemDataRole.UserRole + 2  # a value that sorts correctly (numbers as numbers)
ThumbRole = Qt.ItemDataRole.UserRole + 3  # QImage or None (requests a load)


def folder_text(c: Cell) -> str:
    """The folder within the case; the case's name for cells at its root (not ".")."""
    return c.case if c.folder in (".", "") else c.folder


@dataclass(frozen=True)
class Column:
    title: str
    display: Callable[[Cell], Any]
    sort: Callable[[Cell], Any]
    tip: str = ""


def _p(c: Cell) -> str:
    return c.p_text(3)


COLUMNS: tuple[Column, ...] = (
    Column("File", lambda c: c.file, lambda c: c.file.lower()),
    Column("Case", lambda c: c.case, lambda c: c.case.lower()),
    Column(
        "Folder", folder_text, lambda c: folder_text(c).lower(), "Sub-folder of the case (the case itself at its root)"
    ),
    Column(
        "Model",
        lambda c: c.prediction or ("error" if c.status == ERROR else "…"),
        lambda c: c.prediction or c.status,
        "The model's class at the current threshold",
    ),
    Column("P(ALL)", _p, lambda c: -1.0 if c.p_all is None else c.p_all, "Calibrated probability of ALL"),
    Column(
        "Flagged",
        lambda c: "open" if c.review_open else ("reviewed" if c.flagged else ""),
        lambda c: 2 * c.review_open + c.flagged,
        "Flagged for review by the model (P(ALL) near the threshold, members disagree or the quality check "
        "failed): 'open' until a person reviews it, then 'reviewed'",
    ),
    Column(
        "Reviewed",
        lambda c: c.review.label if c.review else "",
        lambda c: c.review.label if c.review else "",
        "The technician's label",
    ),
    Column(
        "QC",
        lambda c: c.qc,
        lambda c: c.qc,
        "Why the image failed the input quality check (not a cell?): excluded from % blasts until a "
        "reviewer labels it ALL or HEM",
    ),
    Column(
        "Final", lambda c: c.final_label or "", lambda c: c.final_label or "", "Reviewed label if any, else the model's"
    ),
    Column(
        "Reviewer", lambda c: c.review.reviewer if c.review else "", lambda c: c.review.reviewer if c.review else ""
    ),
    Column("Error", lambda c: c.error, lambda c: c.error),
)
COL = {c.title: i for i, c in enumerate(COLUMNS)}


class CellModel(QAbstractTableModel):
    def __init__(self, thumbs=None, parent=None) -> None:
        super().__init__(parent)
        self.cells: list[Cell] = []
        self._row_of: dict[str, int] = {}
        self.thumbs = thumbs  # gui.thumbs.ImageLoader or None
        self._thumb_rows: set[int] = set()
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(30)
        self._thumb_timer.timeout.connect(self._flush_thumbs)
        if thumbs is not None:
            thumbs.ready.connect(self._thumb_ready)

    # --- Qt interface -------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008  (Qt's own signature; never mutated)
        return 0 if parent.isValid() else len(self.cells)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008  (Qt's own signature; never mutated)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section].title
            if role == Qt.ItemDataRole.ToolTipRole:
                return COLUMNS[section].tip or None
        return super().headerData(section, orientation, role)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        cell = self.cells[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[col].display(cell)
        if role == CellRole:
            return cell
        if role == SortRole:
            return COLUMNS[col].sort(cell)
        if role == ThumbRole:
            return self.thumbs.get(cell.key) if self.thumbs is not None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(cell)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL["P(ALL)"]:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # --- updates ------------------------------------------------------------------------------
    def row_of(self, key: str) -> int | None:
        return self._row_of.get(key)

    def add_cells(self, cells: list[Cell]) -> list[Cell]:
        """Append cells not already present (by path); returns those added."""
        new = []
        seen = set()
        for c in cells:
            if c.key in self._row_of or c.key in seen:
                continue
            seen.add(c.key)
            new.append(c)
        if new:
            first = len(self.cells)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for i, c in enumerate(new):
                self.cells.append(c)
                self._row_of[c.key] = first + i
            self.endInsertRows()
        return new

    def clear(self) -> None:
        self.beginResetModel()
        self.cells = []
        self._row_of = {}
        self.endResetModel()

    def rows_changed(self, rows: Iterable[int], roles=None, last_col: int | None = None) -> None:
        """Emit dataChanged for the given rows, merged into contiguous ranges (a range spanning rows
        that did not change would make the filter proxy re-test all of them)."""
        rs = sorted(set(rows))
        if not rs:
            return
        last_col = len(COLUMNS) - 1 if last_col is None else last_col
        roles = roles or []
        start = prev = rs[0]
        for r in rs[1:] + [None]:
            if r is not None and r == prev + 1:
                prev = r
                continue
            self.dataChanged.emit(self.index(start, 0), self.index(prev, last_col), roles)
            if r is not None:
                start = prev = r

    def all_changed(self) -> None:
        if self.cells:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.cells) - 1, len(COLUMNS) - 1))

    def _thumb_ready(self, key: str) -> None:
        """Thumbnails arrive one by one: repaint them together, at most every 30 ms."""
        r = self._row_of.get(key)
        if r is not None:
            self._thumb_rows.add(r)
            if not self._thumb_timer.isActive():
                self._thumb_timer.start()

    def _flush_thumbs(self) -> None:
        rows, self._thumb_rows = self._thumb_rows, set()
        self.rows_changed([r for r in rows if r < len(self.cells)], roles=[ThumbRole], last_col=0)


def tooltip(c: Cell) -> str:
    lines = [c.file, f"Case: {c.case}   Folder: {c.folder}"]
    if c.status == PENDING:
        lines.append("Not classified yet")
    elif c.status == ERROR:
        lines.append(f"Error: {c.error}")
    else:
        lines.append(f"Model: {c.prediction}   P(ALL) = {c.p_text(3)}")
        if c.qc:
            lines.append(f"QC failed: {c.qc}")
        if c.excluded:
            lines.append(f"Excluded from % blasts: {exclusion_reason(c.final_label)}")
        if c.review_open:
            lines.append("Flagged: review open")
    if c.review:
        lines.append(f"Reviewed: {c.review.label} by {c.review.reviewer} at {local_time(c.review.reviewed_at)}")
    if c.stale is not None:
        lines.append("An earlier review was set aside: the image changed since")
    return "\n".join(lines)


FILTERS = {
    "all": ("All cells", lambda c: True),
    "ALL": ("Final class ALL", lambda c: c.final_label == "ALL"),
    "HEM": ("Final class HEM", lambda c: c.final_label == "HEM"),
    "excluded": ("Excluded (not counted)", lambda c: c.excluded),
    "qc": ("QC failed", lambda c: bool(c.qc)),
    "review_open": ("Review open (flagged, not yet reviewed)", lambda c: c.review_open),
    "flagged": ("Flagged by the model (reviewed or not)", lambda c: c.flagged),
    "blast_unconfirmed": ("ALL calls not confirmed", lambda c: c.blast_unconfirmed),
    "left_before_signoff": ("Left before sign-off", lambda c: c.left_before_signoff),
    "unreviewed": ("Not reviewed", lambda c: c.review is None and c.status == OK),
    "reviewed": ("Reviewed", lambda c: c.review is not None),
    "overridden": ("Overridden by reviewer", lambda c: c.overridden),
    "errors": ("Errors", lambda c: c.status == ERROR),
}


class CellFilterProxy(QSortFilterProxyModel):
    """Case + class/review-state filter + file-name text filter; sorts on SortRole."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._case: str | None = None
        self._kind = "all"
        self._text = ""
        self._prange = (0.0, 1.0)
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)

    def _refilter(self, attr: str, value) -> None:
        if getattr(self, attr) == value:
            return
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            setattr(self, attr, value)
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            setattr(self, attr, value)
            self.invalidateFilter()

    def set_case(self, case: str | None) -> None:
        self._refilter("_case", case or None)

    def set_kind(self, kind: str) -> None:
        if kind not in FILTERS:
            raise ValueError(kind)
        self._refilter("_kind", kind)

    def set_text(self, text: str) -> None:
        self._refilter("_text", text.strip().lower())

    def set_p_range(self, lo: float, hi: float) -> None:
        """Only cells with lo <= P(ALL) <= hi (the full range 0-1 also shows cells without a P(ALL))."""
        self._refilter("_prange", (float(lo), float(hi)))

    @property
    def case(self) -> str | None:
        return self._case

    @property
    def kind(self) -> str:
        return self._kind

    def source(self) -> CellModel:
        """The rows' model (set once, in the constructor's caller: typed here for the filter and look-ups)."""
        return cast(CellModel, self.sourceModel())

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        cell = self.source().cells[source_row]
        if self._case is not None and cell.case != self._case:
            return False
        if self._text and self._text not in cell.file.lower():
            return False
        lo, hi = self._prange
        if lo > 0.0 or hi < 1.0:
            p = cell.p_all
            if p is None or not lo <= p <= hi:
                return False
        return FILTERS[self._kind][1](cell)

    def cell_at(self, proxy_row: int) -> Cell | None:
        if 0 <= proxy_row < self.rowCount():
            return self.cell_for(self.index(proxy_row, 0))
        return None

    def cell_for(self, index) -> Cell | None:
        """The Cell of a proxy index, read directly (no ``index.data()`` round trip through C++:
        PySide6 6.12 loses a reference to None on each such call whose Python ``data()`` returns None)."""
        if not index.isValid():
            return None
        src = self.mapToSource(index)
        return self.source().cells[src.row()] if src.isValid() else None

    def proxy_row_of(self, key: str) -> int | None:
        r = self.source().row_of(key)
        if r is None:
            return None
        idx = self.mapFromSource(self.sourceModel().index(r, 0))
        return idx.row() if idx.isValid() else None


__all__ = [
    "Cell",
    "CellModel",
    "CellFilterProxy",
    "COLUMNS",
    "COL",
    "FILTERS",
    "CellRole",
    "SortRole",
    "ThumbRole",
    "PENDING",
    "OK",
    "ERROR",
    "QPersistentModelIndex",
    "p_all_text",
    "folder_text",
]
