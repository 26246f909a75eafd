"""Per-case summary table and the P(ALL) histogram (painted with QPainter: no QtCharts needed)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QSizePolicy, QTableWidget, QTableWidgetItem, QWidget

from .cells import ERROR, OK, Cell
from .style import ALL_COLOR, HEM_COLOR, REVIEW_COLOR

ALL_CASES = "All cases"


@dataclass
class CaseCounts:
    case: str
    cells: int = 0
    classified: int = 0
    all: int = 0
    hem: int = 0
    needs_review: int = 0  # still to review
    errors: int = 0
    reviewed: int = 0

    @property
    def pct_blasts(self) -> float | None:
        n = self.all + self.hem
        return 100.0 * self.all / n if n else None

    def add(self, c: Cell) -> None:
        self.cells += 1
        st = c.status
        if st == ERROR:
            self.errors += 1
            return
        if st != OK:
            return
        self.classified += 1
        lab = c.final_label
        if lab == "ALL":
            self.all += 1
        elif lab == "HEM":
            self.hem += 1
        if c.review is not None:
            self.reviewed += 1
        elif c.needs_review:
            self.needs_review += 1


def count_cases(cells: list[Cell]) -> list[CaseCounts]:
    """One CaseCounts per case (in first-seen order) then the total (if more than one case).

    Runs on the GUI thread over every cell after each batch of changes: kept to plain attribute
    reads (about 1 ms per 2,000 cells)."""
    per: dict[str, CaseCounts] = {}
    for c in cells:
        cc = per.get(c.case)
        if cc is None:
            cc = per[c.case] = CaseCounts(c.case)
        cc.cells += 1
        r = c.result
        if r is None:
            continue
        if r.status != "ok":
            cc.errors += 1
            continue
        cc.classified += 1
        rv = c.review
        lab = rv.label if rv is not None else c.prediction
        if lab == "ALL":
            cc.all += 1
        elif lab == "HEM":
            cc.hem += 1
        if rv is not None:
            cc.reviewed += 1
        elif c.needs_review:
            cc.needs_review += 1
    out = list(per.values())
    if len(out) > 1:
        total = CaseCounts(ALL_CASES)
        for cc in out:
            for f in ("cells", "classified", "all", "hem", "needs_review", "errors", "reviewed"):
                setattr(total, f, getattr(total, f) + getattr(cc, f))
        out.append(total)
    return out


HEADERS = ("Case", "Cells", "ALL", "HEM", "% blasts", "Needs review", "Errors", "Reviewed")


class SummaryTable(QTableWidget):
    """Counts use each cell's final label: the reviewer's where reviewed, else the model's."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels(HEADERS)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        h = self.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        h.setMinimumSectionSize(36)
        for i in range(1, len(HEADERS)):
            h.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setToolTip("ALL/HEM/% blasts count the final label: the reviewer's where reviewed, else the model's.\n"
                        "Needs review counts cells not reviewed yet.")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.counts: list[CaseCounts] = []

    def sizeHint(self) -> QSize:
        return QSize(460, self._height())

    def _height(self) -> int:
        rows = max(1, min(6, self.rowCount()))
        return self.horizontalHeader().height() + rows * self.verticalHeader().defaultSectionSize() + 4

    def set_counts(self, counts: list[CaseCounts]) -> None:
        self.counts = counts
        self.setRowCount(len(counts))
        self.setFixedHeight(self._height())
        for r, cc in enumerate(counts):
            pct = "" if cc.pct_blasts is None else f"{cc.pct_blasts:.1f}"
            cells = f"{cc.cells}" if cc.classified + cc.errors == cc.cells else f"{cc.classified + cc.errors}/{cc.cells}"
            vals = (cc.case, cells, cc.all, cc.hem, pct, cc.needs_review, cc.errors, cc.reviewed)
            for col, v in enumerate(vals):
                text = str(v)
                it = self.item(r, col)
                if it is None:
                    it = QTableWidgetItem()
                    if col:
                        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.setItem(r, col, it)
                elif it.text() == text:
                    continue
                it.setText(text)
                if col == 0:
                    it.setToolTip(cc.case)
                f = it.font()
                if f.bold() != (cc.case == ALL_CASES):
                    f.setBold(cc.case == ALL_CASES)
                    it.setFont(f)


class Histogram(QWidget):
    """Distribution of P(ALL) (20 bins) with the threshold line and the review band."""

    BINS = 20

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.counts = [0] * self.BINS
        self.threshold = 0.5
        self.margin = 0.0
        self.title = "P(ALL) distribution"
        self.setMinimumHeight(120)
        self.setToolTip("How many cells fall at each P(ALL). Red bars: above the threshold (ALL), blue: below (HEM).\n"
                        "Amber band: the review margin around the threshold.")

    def sizeHint(self) -> QSize:
        return QSize(360, 150)

    def set_data(self, p_values: list[float], threshold: float, margin: float, title: str = "") -> None:
        counts = [0] * self.BINS
        for p in p_values:
            counts[min(self.BINS - 1, max(0, int(p * self.BINS)))] += 1
        self.counts, self.threshold, self.margin = counts, threshold, margin
        self.title = title or "P(ALL) distribution"
        self.update()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pal = self.palette()
        fg = pal.windowText().color()
        fm = p.fontMetrics()
        lh = fm.height()
        left, right, top, bottom = 34, 8, lh + 4, lh + 6
        W, H = self.width(), self.height()
        plot = QRectF(left, top, max(10, W - left - right), max(10, H - top - bottom))
        p.setPen(fg)
        p.drawText(QRectF(0, 0, W, lh + 2), Qt.AlignmentFlag.AlignCenter, self.title)
        # review band
        band = QColor(REVIEW_COLOR)
        band.setAlpha(60)
        x0 = plot.left() + plot.width() * max(0.0, self.threshold - self.margin)
        x1 = plot.left() + plot.width() * min(1.0, self.threshold + self.margin)
        p.fillRect(QRectF(x0, plot.top(), x1 - x0, plot.height()), band)
        mx = max(self.counts) or 1
        bw = plot.width() / self.BINS
        for i, n in enumerate(self.counts):
            if not n:
                continue
            h = plot.height() * n / mx
            centre = (i + 0.5) / self.BINS
            p.fillRect(QRectF(plot.left() + i * bw + 1, plot.bottom() - h, bw - 2, h),
                       ALL_COLOR if centre >= self.threshold else HEM_COLOR)
        # axes
        p.setPen(QPen(fg, 1))
        p.drawLine(plot.bottomLeft(), plot.bottomRight())
        p.drawLine(plot.bottomLeft(), plot.topLeft())
        for v in (0.0, 0.5, 1.0):
            x = plot.left() + plot.width() * v
            p.drawText(QRectF(x - 20, plot.bottom() + 2, 40, lh), Qt.AlignmentFlag.AlignCenter, f"{v:g}")
        p.drawText(QRectF(0, plot.top() - lh / 2, left - 4, lh), Qt.AlignmentFlag.AlignRight, str(mx))
        p.drawText(QRectF(0, plot.bottom() - lh, left - 4, lh), Qt.AlignmentFlag.AlignRight, "0")
        # threshold line
        xt = plot.left() + plot.width() * self.threshold
        p.setPen(QPen(fg, 1.5, Qt.PenStyle.DashLine))
        p.drawLine(int(xt), int(plot.top()), int(xt), int(plot.bottom()))
        p.end()
