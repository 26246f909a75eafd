"""The window's commands: text, keys, tip and the method they call, in one table, from which the menus,
the shortcuts and Help ▸ Keyboard shortcuts are all built (so the list can never disagree with the keys).

A command's ``slot`` takes the window and returns the callable to run (``lambda w: w.exports.pdf_dialog``).
:func:`build_actions` calls every one of them once, when the window builds its actions, so a misspelt
name is an AttributeError at start-up (and in the tests), never a silent failure on a click.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMenu

from .document import ReviewCommand
from .user_guide import UserGuide

SK = QKeySequence.StandardKey


@dataclass(frozen=True)
class Command:
    name: str  # the action is ``window.acts[name]``
    text: str
    slot: Callable[[Any], Callable]  # window -> the callable the action runs (bound at start-up)
    keys: tuple = ()  # key strings or QKeySequence.StandardKey values
    tip: str = ""
    checkable: bool = False
    enabled: bool = True
    help: str = ""  # what Help ▸ Keyboard shortcuts says (the tip, else the text)
    on_cells: bool = False  # a label key: acts only while the gallery, table or preview has the focus


COMMANDS: tuple[Command, ...] = (
    Command(
        "open",
        "&Open folder…",
        lambda w: partial(w.opener.open_dialog, w),
        (SK.Open,),
        "Open a case folder (all images in it and its sub-folders)",
    ),
    Command(
        "open_files",
        "Open &images…",
        lambda w: partial(w.opener.open_files_dialog, w),
        ("Ctrl+Shift+O",),
        "Open single image files",
    ),
    Command(
        "open_store",
        "Open case &store…",
        lambda w: partial(w.opener.open_store_dialog, w),
        ("Ctrl+Alt+O",),
        "Open a case store (.leukoscan; .db too) written by the app or by leukoscan-cli classify --store: its "
        "results and reviews, without classifying again",
    ),
    Command(
        "find_record",
        "&Find case record…",
        lambda w: partial(w.opener.find_record_dialog, w),
        ("Ctrl+Shift+F",),
        "Open the case record of a sample id or a folder (its reviews and sign-off)",
    ),
    Command(
        "sample_id",
        "Case/sample &ID…",
        lambda w: w.case_actions.edit_sample_id,
        ("Ctrl+Shift+I",),
        "The sample or case id of the current case (used in the title and reports)",
    ),
    Command(
        "export",
        "&Export report…",
        lambda w: w.exports.csv_dialog,
        ("Ctrl+E",),
        "Write the per-cell CSV (with review columns), the summary CSV and the review history",
    ),
    Command(
        "export_pdf",
        "Export &PDF report…",
        lambda w: w.exports.pdf_dialog,
        ("Ctrl+P",),
        "A printable case report: verdict with its 95% interval, histogram, model, overridden and flagged cells",
    ),
    Command("close_cases", "&Close all cases", lambda w: w.opener.close_cases, ("Ctrl+W",), "Remove all opened cases"),
    Command("settings", "&Settings…", lambda w: w.settings_dialog, ("Ctrl+,", SK.Preferences), "Settings"),
    Command("quit", "&Quit", lambda w: w.close, (SK.Quit,), "Quit"),
    Command(
        "all",
        "Label &ALL",
        lambda w: partial(w.reviews.review, "ALL"),
        ("A",),
        "Label the selected cells ALL",
        on_cells=True,
    ),
    Command(
        "hem",
        "Label &HEM",
        lambda w: partial(w.reviews.review, "HEM"),
        ("H",),
        "Label the selected cells HEM",
        on_cells=True,
    ),
    Command(
        "accept",
        "A&ccept model class",
        lambda w: partial(w.reviews.review, ReviewCommand.ACCEPT),
        ("Space",),
        "Accept the model's class for the selected cells (bulk accept: select many)",
        on_cells=True,
    ),
    Command(
        "exclude",
        "E&xclude from % blasts…",
        lambda w: w.reviews.exclude,
        ("X",),
        "Not a cell, artefact, smudge, duplicate: the selected cells stop counting (a reason is asked)",
        on_cells=True,
    ),
    Command(
        "clear",
        "Clear &review",
        lambda w: partial(w.reviews.review, ReviewCommand.CLEAR),
        ("U",),
        "Remove the review of the selected cells",
        on_cells=True,
    ),
    Command(
        "undo",
        "&Undo review",
        lambda w: w.reviews.undo,
        (SK.Undo,),
        "Undo the last review action (a bulk action is one step)",
        enabled=False,
    ),
    Command(
        "redo",
        "&Redo review",
        lambda w: w.reviews.redo,
        ("Ctrl+Shift+Z", SK.Redo),
        "Redo the review action undone",
        enabled=False,
    ),
    Command(
        "next",
        "&Next cell with an open review",
        lambda w: w.reviews.next_open,
        ("N",),
        "Select the next flagged cell that nobody has reviewed yet",
    ),
    Command(
        "prev",
        "&Previous cell with an open review",
        lambda w: partial(w.reviews.next_open, backwards=True),
        ("Shift+N",),
        "Select the previous flagged cell that nobody has reviewed yet",
    ),
    Command(
        "flagged",
        "Review &flagged cells",
        lambda w: w.set_flagged_mode,
        ("F",),
        "Walk what is left before sign-off (flagged cells not reviewed, ALL calls not confirmed): each label "
        "moves to the next",
        checkable=True,
    ),
    Command(
        "compare",
        "C&ompare selected",
        lambda w: w.compare_selected,
        ("C",),
        "Show 2-4 selected cells side by side at the same scale",
    ),
    Command(
        "sign_off",
        "&Sign off case…",
        lambda w: w.case_actions.sign_off,
        ("Ctrl+Return",),
        "Sign the current case off once no flagged cell is left unreviewed (locks its reviews)",
    ),
    Command(
        "reopen",
        "Re&open case…",
        lambda w: w.case_actions.reopen,
        ("Ctrl+Shift+Return",),
        "Reopen a signed-off case to change its reviews (asks for a reason, logged)",
    ),
    Command(
        "cancel",
        "&Cancel classification",
        lambda w: w.run_panel.cancel,
        ("Esc",),
        "Stop the running classification",
        enabled=False,
    ),
    Command(
        "resume",
        "Classify &remaining",
        lambda w: w.run_panel.classify_remaining,
        ("Ctrl+R",),
        "Classify the cells a cancelled run did not reach",
    ),
    Command(
        "model_info",
        "Model &card…",
        lambda w: w.show_model_info,
        ("Ctrl+I",),
        "Version, validation metrics, threshold and provenance of the model",
    ),
    Command("reload_models", "Re&load models", lambda w: w.model_chooser.reload, (), "Re-read the model folders"),
    Command("user_guide", "&User guide", lambda w: lambda: open_user_guide(w), (), "The user guide, inside the app"),
    Command("shortcuts", "&Keyboard shortcuts", lambda w: w.prompts.show_shortcuts, ("F1",), "This list"),
    Command("about", "&About LeukoScan", lambda w: w.show_about),
)


def open_user_guide(window) -> UserGuide:
    """Help ▸ User guide: the bundled guide in a window of its own (non-modal: the app stays usable)."""
    guide = UserGuide(window)
    guide.show()
    return guide


MENUS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "&File",
        (
            "open",
            "open_files",
            "open_store",
            "find_record",
            "@recent",
            "-",
            "sample_id",
            "export",
            "export_pdf",
            "close_cases",
            "-",
            "settings",
            "-",
            "quit",
        ),
    ),
    (
        "&Review",
        (
            "all",
            "hem",
            "accept",
            "exclude",
            "clear",
            "-",
            "undo",
            "redo",
            "-",
            "next",
            "prev",
            "flagged",
            "compare",
            "-",
            "sign_off",
            "reopen",
        ),
    ),
    ("&Classification", ("cancel", "resume", "-", "model_info", "reload_models")),
    ("&Help", ("user_guide", "shortcuts", "about")),
)


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


def build_actions(window, commands: tuple[Command, ...] = COMMANDS) -> dict[str, QAction]:
    """Every command as a QAction (the window keeps them as ``window.acts``), its callable bound now.  Added to
    the window, so its keys work anywhere, except the label keys (``on_cells``), which work only while the cell
    views (``window.cell_views``) have the focus: a key typed where a text box had been never relabels a cell."""
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
        a.setEnabled(c.enabled)
        if c.on_cells:
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            for view in window.cell_views():
                view.addAction(a)
        else:
            window.addAction(a)
        actions[c.name] = a
    return actions


def build_menus(window, actions: dict[str, QAction], recent_filler: Callable) -> QMenu:
    """The menu bar from :data:`MENUS`; returns File ▸ Open recent (filled by ``recent_filler`` when shown)."""
    recent: QMenu | None = None
    for title, names in MENUS:
        m = window.menuBar().addMenu(title)
        for n in names:
            if n == "-":
                m.addSeparator()
            elif n == "@recent":
                recent = m.addMenu("Open &recent")
                recent.aboutToShow.connect(recent_filler)
            else:
                m.addAction(actions[n])
    if recent is None:
        raise ValueError("MENUS has no '@recent' entry (File > Open recent)")
    return recent


def cell_menu(view, pos, actions: dict[str, QAction], current_cell: Callable) -> QMenu:
    """The cells' context menu at ``pos`` of ``view`` (the gallery or the table); a right-click on a cell that is
    not selected selects it first, so the menu acts on what was clicked."""
    idx = view.indexAt(pos)
    if idx.isValid() and not view.selectionModel().isSelected(idx):
        view.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
    m = QMenu(view)
    for name in ("all", "hem", "accept", "clear", "-", "next", "compare"):
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
