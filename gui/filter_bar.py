"""The filters above the gallery: case, class/review state, file name, P(ALL) range.  They act on the
one filter proxy both views share, so the gallery and the table always show the same cells."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QLineEdit, QWidget

from .cells import FILTERS
from .document import ALL_CASES


class FilterBar(QWidget):
    changed = Signal()  # any filter changed (the summary and counts follow)

    def __init__(self, proxy, parent=None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        h = QHBoxLayout(self)
        h.setContentsMargins(2, 2, 2, 2)
        h.addWidget(QLabel("Case"))
        self.case_combo = QComboBox()
        self.case_combo.setObjectName("caseCombo")
        self.case_combo.setMinimumContentsLength(16)
        self.case_combo.addItem(ALL_CASES, "")
        self.case_combo.currentIndexChanged.connect(
            lambda _i: self._apply(proxy.set_case, self.case_combo.currentData() or None)
        )
        h.addWidget(self.case_combo)
        h.addSpacing(8)
        h.addWidget(QLabel("Show"))
        self.filter_combo = QComboBox()
        self.filter_combo.setObjectName("filterCombo")
        for key, (label, _fn) in FILTERS.items():
            self.filter_combo.addItem(label, key)
        self.filter_combo.currentIndexChanged.connect(
            lambda _i: self._apply(proxy.set_kind, self.filter_combo.currentData())
        )
        h.addWidget(self.filter_combo)
        h.addSpacing(8)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter file names…")
        self.search.setClearButtonEnabled(True)
        self.search.setFixedWidth(220)  # a fixed place: it never shrinks away from under the mouse
        self.search.textChanged.connect(lambda t: self._apply(proxy.set_text, t))
        h.addWidget(self.search)
        h.addSpacing(8)
        h.addWidget(QLabel("P(ALL)"))
        self.p_min, self.p_max = QDoubleSpinBox(), QDoubleSpinBox()
        for sb, v, tip in (
            (self.p_min, 0.0, "Show cells with P(ALL) at least this"),
            (self.p_max, 1.0, "Show cells with P(ALL) at most this"),
        ):
            sb.setRange(0.0, 1.0)
            sb.setDecimals(2)
            sb.setSingleStep(0.05)
            sb.setValue(v)
            sb.setToolTip(tip)
            sb.setKeyboardTracking(False)
            sb.valueChanged.connect(
                lambda _v: self._apply(lambda: proxy.set_p_range(self.p_min.value(), self.p_max.value()))
            )
        h.addWidget(self.p_min)
        h.addWidget(QLabel("–"))
        h.addWidget(self.p_max)
        h.addStretch(1)
        self.shown_label = QLabel()
        self.shown_label.setObjectName("shownLabel")
        h.addWidget(self.shown_label)

    def show_left_before_signoff(self) -> None:
        """Show ▸ Left before sign-off, no file-name or P(ALL) filter: every cell the walk still needs."""
        self.search.clear()
        self.p_min.setValue(0.0)
        self.p_max.setValue(1.0)
        self.filter_combo.setCurrentIndex(self.filter_combo.findData("left_before_signoff"))

    def _apply(self, fn, *args) -> None:
        fn(*args)
        self.changed.emit()

    def set_cases(self, cases) -> None:
        """One entry per case (its sample id first when it has one), after "All cases"."""
        for case in cases:
            i = self.case_combo.findData(case.name)
            text = case.name if not case.sample_id else f"{case.sample_id} — {case.name}"
            if i < 0:
                self.case_combo.addItem(text, case.name)
            else:
                self.case_combo.setItemText(i, text)

    def reset_cases(self) -> None:
        self.case_combo.blockSignals(True)
        self.case_combo.clear()
        self.case_combo.addItem(ALL_CASES, "")
        self.case_combo.blockSignals(False)
        self.proxy.set_case(None)
