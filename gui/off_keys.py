"""A label key pressed while its action is off (the case is signed off) says why in the status bar and goes no
further: the gallery would otherwise take the letter as a search and jump to a cell whose name starts with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence


class OffKeys(QObject):
    """Installed on the cell views: eats the key of a disabled action of ``actions`` ((action, why it is off)) and
    passes ``why`` to ``say(text, ms)``."""

    def __init__(self, actions: Sequence[tuple[QAction, str]], say: Callable[[str, int], object], parent=None) -> None:
        super().__init__(parent)
        self.actions = list(actions)
        self.say = say

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        pressed = QKeySequence(event.keyCombination())
        for action, why in self.actions:
            if not action.isEnabled() and pressed in action.shortcuts():
                self.say(why, 8000)
                return True
        return False
