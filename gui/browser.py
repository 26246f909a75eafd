"""The cell views: the gallery and the table over one filter proxy and one selection.

Owns what "current", "selected" and "next" mean, so review actions and the preview ask it instead of
reaching into the views.  Sorting keeps the current cell selected and scrolled into view.
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QPoint, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QListView, QTableView, QTabWidget

from .cells import COLUMNS, OK, Cell, CellFilterProxy, CellModel
from .delegate import TileDelegate
from .style import TABLE_SELECTION


def neutral_selection(view) -> None:
    """Selected rows in a neutral grey, never the HEM blue the platform highlight often is."""
    pal = view.palette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.Highlight, QColor(TABLE_SELECTION))
        pal.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    view.setPalette(pal)


GALLERY_BACKGROUND = "#16181d"  # behind the tiles: the delegate makes its tiles opaque on it

#: The smallest gallery tile at which a cell counts as shown to a person (a 450 px cell at 96 px: the nucleus and
#: its chromatin are still told apart; at the 64 px minimum they are not).  The preview is always larger.
READABLE_TILE_PX = 96

SELECT = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
TABLE_WIDTHS = (150, 120, 90, 50, 58, 92, 70, 46, 90)  # File ... Reviewer: Error (last, stretched) stays in view


class CellBrowser(QTabWidget):
    selectionChanged = Signal()  # current cell or selection changed
    contextMenuRequested = Signal(QAbstractItemView, QPoint)  # the gallery or the table, where in it

    def __init__(self, model: CellModel, thumbs, thumb_size: int, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = CellFilterProxy(self)
        self.proxy.setSourceModel(model)

        g = self.gallery = QListView()
        g.setObjectName("gallery")
        g.setViewMode(QListView.ViewMode.IconMode)
        g.setMovement(QListView.Movement.Static)
        g.setResizeMode(QListView.ResizeMode.Adjust)
        g.setUniformItemSizes(True)
        g.setLayoutMode(QListView.LayoutMode.Batched)
        g.setBatchSize(500)
        g.setSpacing(3)
        g.setWrapping(True)
        g.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        g.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.delegate = TileDelegate(self.proxy, thumbs, thumb_size, g, background=QColor(GALLERY_BACKGROUND))
        g.setItemDelegate(self.delegate)
        g.setModel(self.proxy)
        g.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        g.customContextMenuRequested.connect(lambda pos: self.contextMenuRequested.emit(self.gallery, pos))
        g.setStyleSheet(f"QListView#gallery {{ background: {GALLERY_BACKGROUND}; }}")

        self.table = self._make_table(g)
        neutral_selection(g)  # the rubber band and any platform-drawn selection

        self.addTab(g, "Gallery")
        self.addTab(self.table, "Table")
        sm = g.selectionModel()
        sm.currentChanged.connect(lambda *_: self.selectionChanged.emit())
        sm.selectionChanged.connect(lambda *_: self.selectionChanged.emit())
        self._keep: str | None = None
        self.proxy.layoutAboutToBeChanged.connect(self._remember_current)
        self.proxy.layoutChanged.connect(self._restore_current)

    def _make_table(self, gallery: QListView) -> QTableView:
        """The table view of the same rows, sharing the gallery's selection."""
        t = QTableView()
        t.setObjectName("table")
        t.setModel(self.proxy)
        t.setSelectionModel(gallery.selectionModel())  # one selection for both views
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        t.setSortingEnabled(True)
        t.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        t.verticalHeader().setDefaultSectionSize(22)
        t.verticalHeader().hide()
        h = t.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        h.setStretchLastSection(True)
        h.setMinimumSectionSize(40)
        for col, width in enumerate(TABLE_WIDTHS[: len(COLUMNS) - 1]):
            t.setColumnWidth(col, width)
        t.setAlternatingRowColors(True)
        t.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        t.customContextMenuRequested.connect(lambda pos: self.contextMenuRequested.emit(self.table, pos))
        t.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        neutral_selection(t)
        return t

    # --- what is selected -------------------------------------------------------------------------
    def current_cell(self) -> Cell | None:
        idx = self.gallery.currentIndex()
        return self.proxy.cell_at(idx.row()) if idx.isValid() else None

    def selected_cells(self) -> list[Cell]:
        """The selected cells in view order; the current one when nothing is selected."""
        rows = sorted({i.row() for i in self.gallery.selectionModel().selectedIndexes()})
        cells = [c for c in (self.proxy.cell_at(r) for r in rows) if c is not None]
        if not cells:
            c = self.current_cell()
            cells = [c] if c is not None else []
        return cells

    def cells_on_page(self, cells: list[Cell]) -> list[Cell]:
        """Of ``cells``, those the gallery shows now at a readable size: the gallery is the tab on screen, its tiles
        are at least :data:`READABLE_TILE_PX`, the tile is (at least three quarters) inside the viewport and its
        thumbnail has been drawn.  What a bulk accept may confirm: the page on screen, never the cells scrolled past."""
        g = self.gallery
        if self.currentWidget() is not g or not g.isVisible() or self.delegate.thumb_size < READABLE_TILE_PX:
            return []
        vp = g.viewport().rect()
        out = []
        for c in cells:
            row = self.proxy.proxy_row_of(c.key)
            if row is None or not self.delegate.thumbs.has(c.key):
                continue
            r = g.visualRect(self.proxy.index(row, 0))
            inside = r.intersected(vp)
            if r.isValid() and inside.width() * inside.height() * 4 >= r.width() * r.height() * 3:
                out.append(c)
        return out

    def selection_size(self) -> int:
        return max(1, len(self.gallery.selectionModel().selectedRows()))

    def select_row(self, row: int) -> None:
        if row < 0 or row >= self.proxy.rowCount():
            return
        idx = self.proxy.index(row, 0)
        self.gallery.selectionModel().setCurrentIndex(idx, SELECT)
        self.gallery.scrollTo(idx)
        if self.currentWidget() is self.table:
            self.table.scrollTo(idx)

    def select_key(self, key: str) -> bool:
        r = self.proxy.proxy_row_of(key)
        if r is None:
            return False
        self.select_row(r)
        return True

    def next_open(self, backwards: bool = False, case: str | None = None, want=None) -> Cell | None:
        """Select the next (previous) cell in view order with an open review (or for which ``want(cell)``
        holds); None when there is none."""
        want = want or (lambda c: c.review_open)
        n = self.proxy.rowCount()
        if n == 0:
            return None
        cur = self.gallery.currentIndex()
        start = cur.row() if cur.isValid() else -1
        step = -1 if backwards else 1
        for k in range(1, n + 1):
            r = (start + step * k) % n
            c = self.proxy.cell_at(r)
            if c is not None and c.status == OK and want(c) and (case is None or c.case == case):
                self.select_row(r)
                return c
        return None

    # --- sorting keeps the current cell ----------------------------------------------------------
    def _remember_current(self, *_args) -> None:
        c = self.current_cell()
        self._keep = c.key if c is not None else None

    def _restore_current(self, *_args) -> None:
        key, self._keep = self._keep, None
        if key is None:
            return
        r = self.proxy.proxy_row_of(key)
        if r is not None:
            idx = self.proxy.index(r, 0)
            view = self.currentWidget()
            if isinstance(view, QAbstractItemView):  # the gallery or the table
                view.scrollTo(idx, QAbstractItemView.ScrollHint.PositionAtCenter)

    def set_thumb_size(self, size: int) -> None:
        self.delegate.thumb_size = size
        self.gallery.doItemsLayout()
        self.gallery.viewport().update()
