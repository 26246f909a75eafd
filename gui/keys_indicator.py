"""The status bar's "Label keys on / off" indicator: A, H, X, Space and U relabel cells only while a cell view
(the gallery, the table or the preview) has the keyboard focus, and the technician should see which it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtWidgets import QApplication, QLabel, QWidget

ON, OFF = "Label keys on", "Label keys off: click a cell"


class LabelKeysIndicator(QLabel):
    """Follows the application's focus; ``views()`` names the widgets whose focus makes the label keys act."""

    def __init__(self, views: Callable[[], Sequence[QWidget]], parent=None) -> None:
        super().__init__(parent)
        self.views = views
        self.setObjectName("keysLabel")
        self.setFixedWidth(self.fontMetrics().horizontalAdvance(OFF) + 12)
        self.setToolTip(
            "A, H, X, Space and U label cells only while the gallery, the table or the preview has the keyboard focus"
        )
        app = QApplication.instance()
        assert isinstance(app, QApplication)  # (a widget exists only once the application does)
        app.focusChanged.connect(self._focus_moved)
        self._focus_moved(None, QApplication.focusWidget())

    def labels_have_focus(self) -> bool:
        f = QApplication.focusWidget()
        return f is not None and any(v is f or v.isAncestorOf(f) for v in self.views())

    def _focus_moved(self, _old, _new) -> None:
        on = self.labels_have_focus()
        self.setText(ON if on else OFF)
        self.setStyleSheet("" if on else "color: #b36b00;")
