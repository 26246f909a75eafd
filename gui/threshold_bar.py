"""The threshold controls (spin box, slider, reset, "changed" note) as one toolbar widget."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QWidget


class ThresholdBar(QWidget):
    changed = Signal(float)  # the user moved the threshold
    resetRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(QLabel(" Threshold "))
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName("thresholdSpin")
        self.spin.setRange(0.01, 0.99)
        self.spin.setDecimals(3)  # card thresholds are calibrated values such as 0.437
        self.spin.setSingleStep(0.01)
        self.spin.setKeyboardTracking(False)
        self.spin.setValue(0.5)  # placeholder until a model is loaded (the widgets are disabled)
        self.spin.setToolTip(
            "Cells with P(ALL) at or above the threshold are ALL. Starts at the model card's "
            "threshold; a changed threshold is kept per model and written into the report."
        )
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 99)
        self.slider.setFixedWidth(120)
        self.slider.setValue(50)
        self.slider.setToolTip(self.spin.toolTip())
        self.reset = QPushButton("Reset")
        self.reset.setToolTip("Back to the model card's threshold")
        self.note = QLabel()
        self.spin.valueChanged.connect(lambda v: self.changed.emit(round(v, 3)))
        self.slider.valueChanged.connect(lambda v: self.changed.emit(v / 100.0))
        self.reset.clicked.connect(self.resetRequested.emit)
        for w in (self.spin, self.slider, self.reset, self.note):
            h.addWidget(w)
        for w in (self.spin, self.reset):
            w.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        for w in (self.spin, self.slider, self.reset):
            w.setEnabled(False)
        self.default: float | None = None

    def show_value(self, value: float, default: float) -> None:
        """Show ``value`` (and whether it differs from the card's ``default``) without emitting ``changed``."""
        self.default = default
        for w in (self.spin, self.slider):
            w.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(round(value * 100))
        for w in (self.spin, self.slider):
            w.blockSignals(False)
        for part in (self.spin, self.slider, self.reset):
            part.setEnabled(True)
        if abs(value - default) > 1e-9:
            self.note.setText(f" <span style='color:#b9770e'><b>changed</b> (card {default:.3g})</span>")
        else:
            self.note.setText(" (model card default)")
