"""gui.actions: every command's callable is bound when the window builds its actions, so a misspelt name
fails at start-up (here), never on a click."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import make_window  # noqa: F401  (fixture)
from PySide6.QtWidgets import QMainWindow

from gui.actions import COMMANDS, MENUS, Command, bind, build_actions


class _Window(QMainWindow):
    def __init__(self):
        super().__init__()
        self.calls = []

    def cell_views(self):
        return ()

    def open_dialog(self):
        self.calls.append("open")


def test_a_misspelt_slot_fails_when_the_actions_are_built(qtbot):
    w = _Window()
    qtbot.addWidget(w)
    with pytest.raises(AttributeError, match="open_dialgo"):
        build_actions(w, (Command("open", "&Open", lambda w: w.open_dialgo),))
    with pytest.raises(TypeError, match="'calls'.*not callable|not callable"):
        build_actions(w, (Command("calls", "Calls", lambda w: w.calls.__len__()),))
    acts = build_actions(w, (Command("open", "&Open", lambda w: w.open_dialog),))
    acts["open"].trigger()
    assert w.calls == ["open"]


def test_every_command_binds_on_the_real_window_and_is_in_a_menu(qtbot, make_window):
    w = make_window(wait_model=False)
    assert set(w.acts) == {c.name for c in COMMANDS}
    for c in COMMANDS:
        assert callable(bind(w, c)), c.name
    in_menus = {n for _, names in MENUS for n in names if n not in ("-", "@recent")}
    assert in_menus <= set(w.acts)
    assert not any(hasattr(w, f"act_{c.name}") for c in COMMANDS)  # no attributes made by name
