"""The window's commands, declared once in the manner of napari's app-model: each names its text, keys, tip, the
method it calls, the menus it is in and when it is enabled (an expression over :mod:`gui.context`).  The menus, the
toolbar, the cells' context menu, the shortcuts and Help ▸ Keyboard shortcuts are all built from the one table (so
the list can never disagree with the keys), and the actions follow the context (nothing enables one by hand).

A command's ``slot`` takes the window and returns the callable to run (``lambda w: w.exports.pdf_dialog``).
:func:`build_actions` calls every one of them once, when the window builds its actions, so a misspelt
name is an AttributeError at start-up (and in the tests), never a silent failure on a click.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar, QWidget

from .context import ALWAYS, CAN_REDO, CAN_UNDO, CASE_LOCKED, HAS_MODEL, RUNNING, ActionContext, When
from .document import Call
from .off_keys import OffKeys
from .review_command import Accept, Clear, Exclude, SetLabel
from .user_guide import UserGuide

SK = QKeySequence.StandardKey


class Menu(StrEnum):
    """Where a command can be: the menu bar's menus (in this order), the cells' context menu, the toolbar."""

    FILE = "&File"
    REVIEW = "&Review"
    CLASSIFICATION = "&Classification"
    HELP = "&Help"
    CELLS = "cells"  # the gallery's and the table's context menu
    TOOLBAR = "toolbar"


MENU_BAR = (Menu.FILE, Menu.REVIEW, Menu.CLASSIFICATION, Menu.HELP)


@dataclass(frozen=True)
class In:
    """A command's place: the commands of one ``group`` stand together in the table's order, a separator between
    groups, the groups in the order of their names."""

    menu: Menu
    group: str


#: File ▸ Open recent (filled when shown) closes this group.
RECENT_AT = In(Menu.FILE, "1_open")


@dataclass(frozen=True)
class Command:
    name: str  # the action is ``window.acts[name]``
    text: str
    slot: Callable[[Any], Callable]  # window -> the callable the action runs (bound at start-up)
    keys: tuple = ()  # key strings or QKeySequence.StandardKey values
    tip: str = ""
    checkable: bool = False
    help: str = ""  # what Help ▸ Keyboard shortcuts says (the tip, else the text)
    on_cells: bool = False  # a label key: acts only while the gallery, table or preview has the focus
    off_tip: str = ""  # a cell key pressed while the action is off: the status bar says this (gui/off_keys.py)
    menus: tuple[In, ...] = ()
    enablement: When = field(kw_only=True)  # required: every command says when it is enabled (ALWAYS included)


FILE_OPEN, FILE_CASE, FILE_SETTINGS, FILE_QUIT = (
    In(Menu.FILE, g) for g in ("1_open", "2_case", "3_settings", "4_quit")
)
LABELS, HISTORY, WALK, SIGN = (In(Menu.REVIEW, g) for g in ("1_label", "2_history", "3_walk", "4_sign"))
RUN, MODEL = In(Menu.CLASSIFICATION, "1_run"), In(Menu.CLASSIFICATION, "2_model")
HELP = In(Menu.HELP, "1_help")
CELLS_LABEL, CELLS_MOVE = In(Menu.CELLS, "1_label"), In(Menu.CELLS, "2_move")
TOOLBAR = In(Menu.TOOLBAR, "1_main")

#: Labels change reviews: off while the current case is signed off (its reviews are locked until it is reopened).
LABEL_ENABLEMENT = ~CASE_LOCKED
LOCKED = "The case is signed off: its reviews are locked (Review ▸ Reopen case to change them)."

COMMANDS: tuple[Command, ...] = (
    Command(
        "open",
        "&Open folder…",
        lambda w: partial(w.opener.open_dialog, w),
        (SK.Open,),
        "Open a case folder (all images in it and its sub-folders)",
        menus=(FILE_OPEN, TOOLBAR),
        enablement=ALWAYS,
    ),
    Command(
        "open_files",
        "Open &images…",
        lambda w: partial(w.opener.open_files_dialog, w),
        ("Ctrl+Shift+O",),
        "Open single image files",
        menus=(FILE_OPEN,),
        enablement=ALWAYS,
    ),
    Command(
        "open_store",
        "Open case &store…",
        lambda w: partial(w.opener.open_store_dialog, w),
        ("Ctrl+Alt+O",),
        "Open a case store (.leukoscan; .db too) written by the app or by leukoscan-cli classify --store: its "
        "results and reviews, without classifying again",
        menus=(FILE_OPEN,),
        enablement=ALWAYS,
    ),
    Command(
        "find_record",
        "&Find case record…",
        lambda w: partial(w.opener.find_record_dialog, w),
        ("Ctrl+Shift+F",),
        "Open the case record of a sample id or a folder (its reviews and sign-off)",
        menus=(FILE_OPEN,),
        enablement=ALWAYS,
    ),
    Command(
        "sample_id",
        "Case/sample &ID…",
        lambda w: w.case_actions.edit_sample_id,
        ("Ctrl+Shift+I",),
        "The sample or case id of the current case (used in the title and reports)",
        menus=(FILE_CASE,),
        enablement=ALWAYS,  # (a signed-off case's id: the dialog says to reopen it first)
    ),
    Command(
        "export",
        "&Export report…",
        lambda w: w.exports.csv_dialog,
        ("Ctrl+E",),
        "Write the per-cell CSV (with review columns), the summary CSV and the review history",
        menus=(FILE_CASE, TOOLBAR),
        enablement=~RUNNING,  # a report of a run half done would miss cells
    ),
    Command(
        "export_pdf",
        "Export &PDF report…",
        lambda w: w.exports.pdf_dialog,
        ("Ctrl+P",),
        "A printable case report: verdict with its 95% interval, histogram, model, overridden and flagged cells",
        menus=(FILE_CASE,),
        enablement=~RUNNING,
    ),
    Command(
        "close_cases",
        "&Close all cases",
        lambda w: w.opener.close_cases,
        ("Ctrl+W",),
        "Remove all opened cases",
        menus=(FILE_CASE,),
        enablement=ALWAYS,
    ),
    Command(
        "settings",
        "&Settings…",
        lambda w: w.settings_dialog,
        ("Ctrl+,", SK.Preferences),
        "Settings",
        menus=(FILE_SETTINGS,),
        enablement=ALWAYS,
    ),
    Command("quit", "&Quit", lambda w: w.close, (SK.Quit,), "Quit", menus=(FILE_QUIT,), enablement=ALWAYS),
    Command(
        "all",
        "Label &ALL",
        lambda w: partial(w.reviews.apply, SetLabel(Call.ALL)),
        ("A",),
        "Label the selected cells ALL",
        on_cells=True,
        off_tip=LOCKED,
        menus=(LABELS, CELLS_LABEL),
        enablement=LABEL_ENABLEMENT,
    ),
    Command(
        "hem",
        "Label &HEM",
        lambda w: partial(w.reviews.apply, SetLabel(Call.HEM)),
        ("H",),
        "Label the selected cells HEM",
        on_cells=True,
        off_tip=LOCKED,
        menus=(LABELS, CELLS_LABEL),
        enablement=LABEL_ENABLEMENT,
    ),
    Command(
        "accept",
        "A&ccept model class",
        lambda w: partial(w.reviews.apply, Accept()),
        ("Space",),
        "Accept the model's class for the selected cells (bulk accept: select many)",
        on_cells=True,
        off_tip=LOCKED,
        menus=(LABELS, CELLS_LABEL),
        enablement=LABEL_ENABLEMENT,
    ),
    Command(
        "exclude",
        "E&xclude from % blasts…",
        lambda w: partial(w.reviews.apply, Exclude()),
        ("X",),
        "Not a cell, artefact, smudge, duplicate: the selected cells stop counting (a reason is asked)",
        on_cells=True,
        off_tip=LOCKED,
        menus=(LABELS,),
        enablement=LABEL_ENABLEMENT,
    ),
    Command(
        "clear",
        "Clear &review",
        lambda w: partial(w.reviews.apply, Clear()),
        ("U",),
        "Remove the review of the selected cells",
        on_cells=True,
        off_tip=LOCKED,
        menus=(LABELS, CELLS_LABEL),
        enablement=LABEL_ENABLEMENT,
    ),
    Command(
        "undo",
        "&Undo review",
        lambda w: w.reviews.undo,
        (SK.Undo,),
        "Undo the last review action (a bulk action is one step)",
        menus=(HISTORY,),
        enablement=CAN_UNDO,
    ),
    Command(
        "redo",
        "&Redo review",
        lambda w: w.reviews.redo,
        ("Ctrl+Shift+Z", SK.Redo),
        "Redo the review action undone",
        menus=(HISTORY,),
        enablement=CAN_REDO,
    ),
    Command(
        "next",
        "&Next cell with an open review",
        lambda w: w.reviews.next_open,
        ("N",),
        "Select the next flagged cell that nobody has reviewed yet",
        menus=(WALK, CELLS_MOVE),
        enablement=ALWAYS,
    ),
    Command(
        "prev",
        "&Previous cell with an open review",
        lambda w: partial(w.reviews.next_open, backwards=True),
        ("Shift+N",),
        "Select the previous flagged cell that nobody has reviewed yet",
        menus=(WALK,),
        enablement=ALWAYS,
    ),
    Command(
        "flagged",
        "Review &flagged cells",
        lambda w: w.set_flagged_mode,
        ("F",),
        "Walk what is left before sign-off (flagged cells not reviewed, ALL calls not confirmed): each label "
        "moves to the next",
        checkable=True,
        menus=(WALK, TOOLBAR),
        enablement=ALWAYS,
    ),
    Command(
        "compare",
        "C&ompare selected",
        lambda w: w.compare_selected,
        ("C",),
        "Show 2-4 selected cells side by side at the same scale",
        menus=(WALK, CELLS_MOVE),
        enablement=ALWAYS,
    ),
    Command(
        "sign_off",
        "&Sign off case…",
        lambda w: w.case_actions.sign_off,
        ("Ctrl+Return",),
        "Sign the current case off once no flagged cell is left unreviewed (locks its reviews)",
        menus=(SIGN,),
        enablement=~CASE_LOCKED,
    ),
    Command(
        "reopen",
        "Re&open case…",
        lambda w: w.case_actions.reopen,
        ("Ctrl+Shift+Return",),
        "Reopen a signed-off case to change its reviews (asks for a reason, logged)",
        menus=(SIGN,),
        enablement=CASE_LOCKED,
    ),
    Command(
        "cancel",
        "&Cancel classification",
        lambda w: w.run_panel.cancel,
        ("Esc",),
        "Stop the running classification",
        menus=(RUN,),
        enablement=RUNNING,
    ),
    Command(
        "resume",
        "Classify &remaining",
        lambda w: w.run_panel.classify_remaining,
        ("Ctrl+R",),
        "Classify the cells a cancelled run did not reach",
        menus=(RUN,),
        enablement=HAS_MODEL & ~RUNNING,
    ),
    Command(
        "model_info",
        "Model &card…",
        lambda w: w.show_model_info,
        ("Ctrl+I",),
        "Version, validation metrics, threshold and provenance of the model",
        menus=(MODEL,),
        enablement=ALWAYS,  # (also the card of a model that failed to load)
    ),
    Command(
        "reload_models",
        "Re&load models",
        lambda w: w.model_chooser.reload,
        (),
        "Re-read the model folders",
        menus=(MODEL,),
        enablement=ALWAYS,
    ),
    Command(
        "user_guide",
        "&User guide",
        lambda w: lambda: open_user_guide(w),
        (),
        "The user guide, inside the app",
        menus=(HELP,),
        enablement=ALWAYS,
    ),
    Command(
        "shortcuts",
        "&Keyboard shortcuts",
        lambda w: w.prompts.show_shortcuts,
        ("F1",),
        "This list",
        menus=(HELP,),
        enablement=ALWAYS,
    ),
    Command("about", "&About LeukoScan", lambda w: w.show_about, menus=(HELP,), enablement=ALWAYS),
)


def open_user_guide(window) -> UserGuide:
    """Help ▸ User guide: the bundled guide in a window of its own (non-modal: the app stays usable)."""
    guide = UserGuide(window)
    guide.show()
    return guide


def layout(menu: Menu, commands: tuple[Command, ...] = COMMANDS) -> list[str]:
    """The names of the commands in ``menu`` in their order, "-" between groups, "@recent" where File ▸ Open recent
    goes."""
    groups: dict[str, list[str]] = {}
    for c in commands:
        for place in c.menus:
            if place.menu == menu:
                groups.setdefault(place.group, []).append(c.name)
    if RECENT_AT.menu == menu:
        groups.setdefault(RECENT_AT.group, []).append("@recent")
    out: list[str] = []
    for group in sorted(groups):
        if out:
            out.append("-")
        out.extend(groups[group])
    return out


def _sequences(keys: tuple) -> list[QKeySequence]:
    out: list[QKeySequence] = []
    for k in keys:
        seqs = QKeySequence.keyBindings(k) if isinstance(k, SK) else [QKeySequence(k)]
        out.extend(s for s in seqs if s not in out)
    return out


def bind(window, command: Command) -> Callable:
    """The callable ``command`` runs on ``window``; raises (AttributeError, TypeError) when it names nothing
    callable: called for every command when the window starts."""
    fn = command.slot(window)
    if not callable(fn):
        raise TypeError(f"command {command.name!r}: {fn!r} is not callable")
    return fn


def build_actions(window, context: ActionContext, commands: tuple[Command, ...] = COMMANDS) -> dict[str, QAction]:
    """Every command as a QAction (the window keeps them as ``window.acts``), its callable bound now, enabled as its
    ``enablement`` says of ``context`` from now on.  Added to the window, so its keys work anywhere, except the label
    keys (``on_cells``), which work only while the cell views (``window.cell_views``) have the focus: a key typed where
    a text box had been never relabels a cell."""
    actions = {}
    for c in commands:
        a = QAction(c.text, window)
        a.setShortcuts(_sequences(c.keys))
        if c.tip:
            a.setStatusTip(c.tip)
            a.setToolTip(c.tip)
        a.setCheckable(c.checkable)
        fn = bind(window, c)
        if c.checkable:
            a.toggled.connect(fn)
        else:
            a.triggered.connect(lambda _checked=False, fn=fn: fn())
        if c.on_cells:
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            for view in window.cell_views():
                view.addAction(a)
        else:
            window.addAction(a)
        actions[c.name] = a
    follow_context(actions, commands, context)
    off = [(actions[c.name], c.off_tip) for c in commands if c.on_cells and c.off_tip]
    keys = OffKeys(off, window.statusBar().showMessage, window)
    for view in window.cell_views():
        for widget in (view, *view.findChildren(QWidget)):  # the gallery inside the tabs takes the key itself
            widget.installEventFilter(keys)
    return actions


def follow_context(actions: dict[str, QAction], commands: tuple[Command, ...], context: ActionContext) -> None:
    """Enable each action as its command's ``enablement`` says of ``context`` now, and again whenever a fact it names
    changes (the one place where actions are enabled)."""

    def update(changed: frozenset) -> None:
        facts = context.facts()
        for c in commands:
            if c.enablement.keys() & changed:
                actions[c.name].setEnabled(c.enablement(facts))

    facts = context.facts()
    for c in commands:
        actions[c.name].setEnabled(c.enablement(facts))
    context.changed.connect(update)


def build_menus(window, actions: dict[str, QAction], recent_filler: Callable) -> QMenu:
    """The menu bar (:data:`MENU_BAR`, each laid out by :func:`layout`); returns File ▸ Open recent (filled by
    ``recent_filler`` when shown)."""
    recent: QMenu | None = None
    for menu in MENU_BAR:
        m = window.menuBar().addMenu(menu.value)
        for n in layout(menu):
            if n == "-":
                m.addSeparator()
            elif n == "@recent":
                recent = m.addMenu("Open &recent")
                recent.aboutToShow.connect(recent_filler)
            else:
                m.addAction(actions[n])
    if recent is None:
        raise ValueError("RECENT_AT names no menu of the menu bar (File > Open recent)")
    return recent


def fill_toolbar(toolbar: QToolBar, actions: dict[str, QAction]) -> None:
    """The toolbar's commands (:data:`Menu.TOOLBAR`); the window adds its widgets (model box, threshold) after."""
    for n in layout(Menu.TOOLBAR):
        if n == "-":
            toolbar.addSeparator()
        else:
            toolbar.addAction(actions[n])


def cell_menu(view, pos, actions: dict[str, QAction], current_cell: Callable) -> QMenu:
    """The cells' context menu (:data:`Menu.CELLS`) at ``pos`` of ``view`` (the gallery or the table); a right-click
    on a cell that is not selected selects it first, so the menu acts on what was clicked."""
    idx = view.indexAt(pos)
    if idx.isValid() and not view.selectionModel().isSelected(idx):
        view.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
    m = QMenu(view)
    for name in layout(Menu.CELLS):
        if name == "-":
            m.addSeparator()
        else:
            m.addAction(actions[name])
    cell = current_cell()
    if cell is not None:
        m.addSeparator()
        m.addAction("Copy file path", lambda: QGuiApplication.clipboard().setText(str(cell.path)))
    m.popup(view.viewport().mapToGlobal(pos))
    return m


def shortcut_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for every command with keys, as the Help list shows them."""
    rows = []
    for c in COMMANDS:
        seqs = _sequences(c.keys)
        if seqs:
            keys = " / ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in seqs)
            rows.append((keys, c.help or c.tip or c.text.replace("&", "")))
    rows.append(
        ("+ / - / 0", "Zoom in / out / fit in the preview (once clicked); wheel zooms, drag pans, double-click fits")
    )
    rows.append(("← → ↑ ↓", "Move between cells (Shift/Ctrl to select several; Ctrl+A selects all shown)"))
    return rows
