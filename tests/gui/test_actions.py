"""gui.actions and gui.context (issue 27 part 4): every command is declared once with its menus and when it is
enabled; changing a fact of the context enables and disables exactly the actions whose enablement names it; every
review command reaches ReviewActions.apply typed; no action is enabled by hand."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import get_args

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from gui_helpers import make_window  # noqa: F401  (fixture)
from PySide6.QtWidgets import QMainWindow, QToolBar

from gui.actions import COMMANDS, MENU_BAR, Command, In, Menu, bind, build_actions, fill_toolbar, layout
from gui.context import ALWAYS, CAN_UNDO, CASE_LOCKED, HAS_MODEL, RUNNING, ActionContext, Key
from gui.document import Call
from gui.review_command import Accept, Clear, Exclude, ReviewRequest, SetLabel

GUI = Path(__file__).resolve().parents[2] / "gui"


class _Window(QMainWindow):
    """Just what build_actions needs of a window: its cell views and the callables the commands name."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def cell_views(self):
        return ()

    def open_dialog(self):
        self.calls.append("open")


def _stub_commands() -> tuple[Command, ...]:
    """One command per kind of enablement, each calling ``w.open_dialog``."""
    whens = {
        "always": ALWAYS,
        "running": RUNNING,
        "idle": ~RUNNING,
        "undo": CAN_UNDO,
        "unlocked": ~CASE_LOCKED,
        "model_idle": HAS_MODEL & ~RUNNING,
        "either": RUNNING | CASE_LOCKED,
    }
    return tuple(Command(n, n, lambda w: w.open_dialog, enablement=e) for n, e in whens.items())


def test_a_misspelt_slot_fails_when_the_actions_are_built(qtbot):
    w = _Window()
    qtbot.addWidget(w)
    ctx = ActionContext(w)
    with pytest.raises(AttributeError, match="open_dialgo"):
        build_actions(w, ctx, (Command("open", "&Open", lambda w: w.open_dialgo, enablement=ALWAYS),))
    with pytest.raises(TypeError, match="'calls'.*not callable|not callable"):
        build_actions(w, ctx, (Command("calls", "Calls", lambda w: w.calls.__len__(), enablement=ALWAYS),))
    acts = build_actions(w, ctx, (Command("open", "&Open", lambda w: w.open_dialog, enablement=ALWAYS),))
    acts["open"].trigger()
    assert w.calls == ["open"]


def test_a_command_without_its_enablement_is_refused():
    with pytest.raises(TypeError, match="enablement"):
        Command("open", "&Open", lambda w: w.open_dialog)  # type: ignore[call-arg]


def test_every_command_declares_its_enablement_and_a_place():
    for c in COMMANDS:
        assert callable(c.enablement) and c.enablement.keys() <= set(Key), c.name
        assert any(p.menu in MENU_BAR for p in c.menus), f"{c.name} is in no menu of the menu bar"
    named = {k for c in COMMANDS for k in c.enablement.keys()}
    assert named == set(Key)  # every fact of the context enables something (none is set for nothing)


def test_a_changed_fact_enables_and_disables_exactly_the_actions_that_name_it(qtbot):
    w = _Window()
    qtbot.addWidget(w)
    ctx = ActionContext(w)
    commands = _stub_commands()
    acts = build_actions(w, ctx, commands)

    def enabled() -> set[str]:
        return {n for n, a in acts.items() if a.isEnabled()}

    assert enabled() == {"always", "idle", "unlocked"}  # every fact False at first
    with qtbot.waitSignal(ctx.changed) as changed:
        assert ctx.update({Key.RUNNING: True}) == {Key.RUNNING}
    assert changed.args == [frozenset({Key.RUNNING})]
    assert enabled() == {"always", "running", "unlocked", "either"}
    ctx.update({Key.HAS_MODEL: True})
    assert enabled() == {"always", "running", "unlocked", "either"}  # a model, but still running
    ctx.update({Key.RUNNING: False})
    assert enabled() == {"always", "idle", "unlocked", "model_idle"}
    ctx.update({Key.CAN_UNDO: True, Key.CASE_LOCKED: True})
    assert enabled() == {"always", "idle", "undo", "model_idle", "either"}
    with qtbot.assertNotEmitted(ctx.changed):
        assert ctx.update({Key.CAN_UNDO: True}) == frozenset()  # nothing changed: nothing announced


def test_the_real_table_follows_the_context(qtbot, make_window):
    """On the window: each fact turns on and off the actions the table says, and no other."""
    w = make_window(wait_model=False)
    for key in Key:
        before = {n: a.isEnabled() for n, a in w.acts.items()}
        facts = dict(w.context.facts())
        flipped = {**facts, key: not facts[key]}
        w.context.update({key: not facts[key]})
        after = {n: a.isEnabled() for n, a in w.acts.items()}
        moved = {n for n in after if after[n] != before[n]}
        expected = {c.name for c in COMMANDS if c.enablement(flipped) != c.enablement(facts)}
        assert moved == expected, key
        assert all(after[c.name] == c.enablement(flipped) for c in COMMANDS)
        w.context.update({key: facts[key]})


def test_menus_toolbar_and_cell_menu_are_built_from_the_table(qtbot, make_window):
    w = make_window(wait_model=False)
    assert set(w.acts) == {c.name for c in COMMANDS}
    for c in COMMANDS:
        assert callable(bind(w, c)), c.name
    bar = {m.title(): m for m in (a.menu() for a in w.menuBar().actions()) if m is not None}
    assert list(bar) == [m.value for m in MENU_BAR]
    for menu in MENU_BAR:
        shown = [a for a in bar[menu.value].actions()]
        names = [n for n in layout(menu) if n not in ("-", "@recent")]
        assert [a for a in shown if not a.isSeparator() and a.menu() is None] == [w.acts[n] for n in names]
        assert sum(a.isSeparator() for a in shown) == layout(menu).count("-")
    assert layout(Menu.FILE)[:5] == ["open", "open_files", "open_store", "find_record", "@recent"]
    assert layout(Menu.CELLS) == ["all", "hem", "accept", "clear", "-", "next", "compare"]
    tb = QToolBar()
    qtbot.addWidget(tb)
    fill_toolbar(tb, w.acts)
    assert [a for a in tb.actions()] == [w.acts[n] for n in ("open", "export", "flagged")]
    assert not any(hasattr(w, f"act_{c.name}") for c in COMMANDS)  # no attributes made by name


def test_groups_are_laid_out_in_name_order_with_separators():
    cmds = (
        Command("b", "b", lambda w: w, menus=(In(Menu.HELP, "2"),), enablement=ALWAYS),
        Command("a", "a", lambda w: w, menus=(In(Menu.HELP, "1"),), enablement=ALWAYS),
        Command("c", "c", lambda w: w, menus=(In(Menu.HELP, "2"),), enablement=ALWAYS),
    )
    assert layout(Menu.HELP, cmds) == ["a", "-", "b", "c"]


class _Reviews:
    def __init__(self):
        self.applied = []

    def apply(self, request):
        self.applied.append(request)
        return 1


@pytest.mark.parametrize(
    "name, request_",
    [
        ("all", SetLabel(Call.ALL)),
        ("hem", SetLabel(Call.HEM)),
        ("accept", Accept()),
        ("clear", Clear()),
        ("exclude", Exclude()),
    ],
)
def test_each_review_command_reaches_apply_typed(qtbot, name, request_):
    w = _Window()
    qtbot.addWidget(w)
    w.reviews = _Reviews()
    command = next(c for c in COMMANDS if c.name == name)
    acts = build_actions(w, ActionContext(w), (command,))
    acts[name].trigger()
    assert w.reviews.applied == [request_]


def test_the_preview_buttons_send_typed_requests(qtbot):
    from gui.preview import PreviewPanel

    panel = PreviewPanel(lambda: None, lambda cell: False)
    qtbot.addWidget(panel)
    got = []
    panel.reviewRequested.connect(got.append)
    for b in (panel.btn_all, panel.btn_hem, panel.btn_accept, panel.btn_clear, panel.btn_exclude):
        b.setEnabled(True)
        b.click()
    assert got == [SetLabel(Call.ALL), SetLabel(Call.HEM), Accept(), Clear(), Exclude()]
    panel.close_loader()


def test_the_review_request_has_the_four_variants_this_file_sends():
    """A new variant of ReviewRequest must be added to the tests above and below (mypy checks that apply matches it)."""
    assert set(get_args(ReviewRequest)) == {SetLabel, Accept, Clear, Exclude}


def test_every_review_request_is_handled_by_apply(qtbot, make_window, cells_dir, monkeypatch):
    """ReviewActions.apply on the real document: each variant does what it names."""
    from gui_helpers import open_and_classify

    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    qtbot.waitUntil(lambda: w.doc.unseen([w.browser.current_cell()]) == [], timeout=10_000)
    cell = w.browser.current_cell()
    other = Call.HEM if cell.prediction == "ALL" else Call.ALL
    monkeypatch.setattr(w.settings, "auto_advance", False)
    assert w.reviews.apply(SetLabel(other)) == 1 and cell.review.label == str(other)
    w.browser.select_key(cell.key)
    assert w.reviews.apply(Accept()) == 1 and cell.review.label == cell.prediction
    w.browser.select_key(cell.key)
    assert w.reviews.apply(Exclude("artefact")) == 1 and cell.review.label == "EXCLUDED: artefact"
    w.browser.select_key(cell.key)
    assert w.reviews.apply(Clear()) == 1 and cell.review is None


def _enables_an_action(node: ast.Call) -> bool:
    """``acts[...].setEnabled(...)``, ``act.setEnabled(...)``."""
    f = node.func
    return isinstance(f, ast.Attribute) and f.attr == "setEnabled" and re.search(r"\bacts?\b", ast.unparse(f.value))


def test_no_action_is_enabled_by_hand():
    """Only gui/actions.py (follow_context) enables actions; the window sets facts, never an action's state."""
    found = []
    for path in sorted(GUI.glob("*.py")):
        if path.name == "actions.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _enables_an_action(node):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
            if path.name == "mainwindow.py" and isinstance(node, ast.Attribute) and node.attr == "setEnabled":
                found.append(f"{path.name}:{node.lineno}: setEnabled in the window")
    assert found == []


def test_the_window_sets_the_facts_its_actions_follow(qtbot, make_window, cells_dir):
    """Running, a model, undo and a signed-off case, as the window sees them, reach the actions."""
    from gui_helpers import open_and_classify

    w = make_window()
    assert w.context[Key.HAS_MODEL] and w.acts["resume"].isEnabled()
    seen = []
    w.runs.stateChanged.connect(
        lambda _s: seen.append((w.context[Key.RUNNING], w.acts["cancel"].isEnabled(), w.acts["export"].isEnabled()))
    )
    open_and_classify(qtbot, w, [cells_dir])
    assert seen[0] == (True, True, False) and seen[-1] == (False, False, True)
    case = next(iter(w.doc.cases.values()))
    cells = list(w.doc.cells)
    w.doc.mark_shown(cells, "preview")
    w.doc.review(cells, "accept", "tech1")
    qtbot.waitUntil(lambda: w.acts["undo"].isEnabled(), timeout=5_000)
    w.doc.set_sample_id(case, "S-1")
    w.browser.select_row(0)
    w.doc.sign_off(case, "tech1", "")
    qtbot.waitUntil(lambda: w.context[Key.CASE_LOCKED], timeout=5_000)
    assert not any(w.acts[n].isEnabled() for n in ("all", "hem", "accept", "exclude", "clear", "sign_off"))
    assert w.acts["reopen"].isEnabled()
    w.doc.reopen(case, "tech1", "a second look")
    qtbot.waitUntil(lambda: not w.context[Key.CASE_LOCKED], timeout=5_000)
    assert all(w.acts[n].isEnabled() for n in ("all", "hem", "accept", "exclude", "clear", "sign_off"))
    assert not w.acts["reopen"].isEnabled()


def test_a_label_key_on_a_signed_off_case_says_why_and_moves_nothing(qtbot, make_window, cells_dir):
    """With the labels off, the key no longer reaches the gallery (which would jump to a cell whose name starts with
    the letter): the status bar says the case is signed off, and the selection and the reviews stay."""
    from gui_helpers import open_and_classify
    from PySide6.QtCore import Qt

    from gui.actions import LOCKED

    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    case = next(iter(w.doc.cases.values()))
    cells = list(w.doc.cells)
    w.doc.mark_shown(cells, "preview")
    w.doc.review(cells, "accept", "tech1")
    w.doc.set_sample_id(case, "S-1")
    w.doc.sign_off(case, "tech1", "")
    w.browser.select_row(3)
    w.browser.gallery.setFocus()
    qtbot.waitUntil(lambda: not w.acts["hem"].isEnabled(), timeout=5_000)
    before = (w.browser.current_cell().key, {c.key: c.review.label for c in cells})
    for key in (Qt.Key.Key_H, Qt.Key.Key_A, Qt.Key.Key_U, Qt.Key.Key_X):
        qtbot.keyClick(w.browser.gallery, key)
        assert w.statusBar().currentMessage() == LOCKED
    assert (w.browser.current_cell().key, {c.key: c.review.label for c in cells}) == before
    w.statusBar().clearMessage()
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_N)  # a key whose action is on is not eaten
    assert w.statusBar().currentMessage() != LOCKED
