"""Per-case summary table and the P(ALL) histogram (painted with QPainter: no QtCharts needed)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QSizePolicy, QTableWidget, QTableWidgetItem, QWidget

from .document import ALL_CASES, local_time
from .style import ALL_COLOR, HEM_COLOR, REVIEW_COLOR

# short headings: ten columns share the side panel (each heading's tooltip says it in full)
HEADERS = ("Case", "Cells", "ALL", "HEM", "% blasts", "Open", "Err.", "QC", "Excl.", "Rev.")
HEADER_TIPS = (
    "The case: its sample id and folder (in full in the tooltip); ✓ = signed off",
    "Cells (classified/total while a run goes)",
    "Final class ALL",
    "Final class HEM",
    "ALL / (ALL + HEM), with its Wilson 95% interval",
    "Review open: flagged cells not reviewed yet (the summary CSV's review_open)",
    "Errors: files that could not be read",
    "Cells that failed the input quality check",
    "Excluded: cells that do not count in % blasts (failed QC and not labelled, or excluded by a "
    "reviewer); the reasons are in the cell's tooltip",
    "Reviewed: cells a person reviewed",
)
SIGNED = "✓ "


def pct_text(cc) -> str:
    """% blasts with its Wilson 95% interval; nothing for the total of several cases (not one patient)."""
    pct, ci = cc.pct_blasts, cc.pct_interval
    if pct is None:
        return "—" if cc.case == ALL_CASES else ""
    text = f"{pct:.1f} ({ci[0]:.0f}–{ci[1]:.0f})" if ci else f"{pct:.1f}"
    if cc.pending:  # a run is still going: not a result yet
        return f"partial: {text}, {cc.cells - cc.pending} of {cc.cells} classified"
    return text


def case_text(case, name: str) -> str:
    """The Case column: the sample id and the folder's name ("BM-H5-001 — patientA"), or the name alone."""
    if case is None:
        return name
    return f"{case.sample_id} — {case.name}" if case.sample_id else case.name


def case_tip(case, name: str) -> str:
    """The Case column's tooltip: sample id, name and folder in full, so the row signed is never a guess."""
    if case is None:
        return name
    return f"Sample ID: {case.sample_id or 'not given'}\nCase: {case.name}\nFolder: {case.root}"


class SummaryTable(QTableWidget):
    """Counts (:class:`engine.case.rules.CaseCounts`, from the document) use each cell's final label: the
    reviewer's where reviewed, else the model's."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels(HEADERS)
        for i, tip in enumerate(HEADER_TIPS):
            item = self.horizontalHeaderItem(i)
            if item is not None:  # (set just above)
                item.setToolTip(tip)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # the Case column is never elided (with two or three cases open, "c…8" hid which row is which, and the ✓):
        # it is as wide as its text, and the table scrolls sideways when the side panel is narrower
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        h = self.horizontalHeader()
        h.setMinimumSectionSize(30)
        for i in range(len(HEADERS)):
            h.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.setToolTip(
            "ALL/HEM/% blasts count the final label: the reviewer's where reviewed, else the model's.\n"
            "% blasts: with its 95% interval (Wilson). The All cases row has none: cells of different "
            "patients are not one sample.\nTo review: flagged cells not reviewed yet. ✓: signed off."
        )
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.counts: list = []

    def sizeHint(self) -> QSize:
        return QSize(460, self._height())

    def _height(self) -> int:
        rows = max(1, min(6, self.rowCount()))
        bar = self.horizontalScrollBar().sizeHint().height()  # room for it when the columns are wider than the panel
        return self.horizontalHeader().height() + rows * self.verticalHeader().defaultSectionSize() + 4 + bar

    def set_counts(self, counts: list, cases: dict | None = None, reasons=None) -> None:
        """``cases``: display name -> Case (for its sample id and sign-off); ``reasons``: display name ->
        {why a cell is excluded: how many} (the Excluded column's tooltip)."""
        reasons = reasons or {}
        self.counts = counts
        cases = cases or {}
        self.setRowCount(len(counts))
        self.setFixedHeight(self._height())
        for r, cc in enumerate(counts):
            case = cases.get(cc.case)
            so = case.signoff if case is not None else None
            name = (SIGNED if so is not None else "") + case_text(case, cc.case)
            cells = f"{cc.cells}" if not cc.pending else f"{cc.cells - cc.pending}/{cc.cells}"
            vals = (
                name,
                cells,
                cc.all,
                cc.hem,
                pct_text(cc),
                cc.review_open,
                cc.errors,
                cc.qc,
                cc.excluded,
                cc.reviewed,
            )
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
                if col == HEADERS.index("Excl."):
                    why = reasons.get(cc.case) or {}
                    it.setToolTip("\n".join(f"{w}: {n}" for w, n in why.items()) or "none excluded")
                if col == 0:
                    tip = case_tip(case, cc.case)
                    if so is not None:
                        tip += (
                            f"\nSigned off by {so.by} at {local_time(so.at)}"
                            + (f" ({so.basis})" if so.basis else "")
                            + (f": {so.comment}" if so.comment else "")
                        )
                    it.setToolTip(tip)
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
        self.setToolTip(
            "How many cells fall at each P(ALL). Red bars: above the threshold (ALL), blue: below (HEM).\n"
            "Amber band: the review margin around the threshold."
        )

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
            p.fillRect(
                QRectF(plot.left() + i * bw + 1, plot.bottom() - h, bw - 2, h),
                ALL_COLOR if centre >= self.threshold else HEM_COLOR,
            )
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
