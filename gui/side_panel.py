"""The window's right-hand side: the selected cell's preview above, the case summary (counts, the review
progress, the P(ALL) histogram) below."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from .document import ALL_CASES, OK, Cell
from .preview import PreviewPanel
from .summary import Histogram, SummaryTable
from .tasks import TaskRunner


class SidePanel(QSplitter):
    def __init__(
        self,
        classifier: Callable[[], Any],
        is_locked: Callable[[Cell], bool],
        parent=None,
        images: TaskRunner | None = None,
    ) -> None:
        """``classifier``: the model loaded now, or None (the preview's overlay asks it); ``is_locked(cell)``: its
        case is signed off (the preview's review buttons are off); ``images``: the runner that decodes images."""
        super().__init__(Qt.Orientation.Vertical, parent)
        self.preview = PreviewPanel(classifier, is_locked, images=images)
        self.summary = SummaryTable()
        self.summary.verticalHeader().setDefaultSectionSize(22)
        self.histogram = Histogram()
        self.flagged_label = QLabel()
        self.flagged_label.setObjectName("flaggedProgress")
        self.flagged_label.setWordWrap(True)  # a long progress line wraps instead of widening the side panel
        self.addWidget(self.preview)
        sw = QWidget()
        sw.setObjectName("summaryArea")
        # a click on the summary, the P(ALL) chart or their labels takes the focus from the cells (Qt gives it to the
        # first widget up from the one clicked that takes click focus): the label keys A, H, X, Space, U then stop
        # acting on the tile selected, as the status bar's indicator says
        sw.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        sl = QVBoxLayout(sw)
        sl.setContentsMargins(4, 0, 4, 4)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Summary</b>"))
        self.flagged_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        head.addWidget(self.flagged_label, 1)
        sl.addLayout(head)
        sl.addWidget(self.summary)
        sl.addWidget(self.histogram, 1)
        self.addWidget(sw)
        self.setStretchFactor(0, 3)
        self.setStretchFactor(1, 2)

    def show_document(self, doc, case: str | None, flagged_progress: str) -> None:
        """Counts of every case, the histogram of ``case`` (None: all), the review progress text."""
        self.summary.set_counts(
            doc.counts(ALL_CASES),
            {c.name: c for c in doc.cases.values()},
            {c.name: doc.exclusion_reasons(c.name) for c in doc.cases.values()},
        )
        ps = [c.p_all for c in doc.cells_of(case) if c.status == OK]
        f = doc.current
        self.histogram.set_data(
            ps,
            doc.threshold or 0.5,
            f.review_margin if f else 0.0,
            f"P(ALL) — {case or (ALL_CASES if len(doc.cases) > 1 else 'case')} ({len(ps)} cells)",
        )
        self.preview.refresh()
        self.flagged_label.setText(flagged_progress)
