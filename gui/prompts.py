"""Every question the window asks and every message box it shows, in one object handed to the components
that need them (export, case actions, opening cases, reviews); the components never reach back into the window
for a dialog.  What was shown, and what was only noted (:meth:`Prompts.note`), goes to the log file.

The window is given the class to build (``MainWindow(prompts=...)``): the tests give a recording subclass
(tests/gui/gui_helpers.py ``RecordedPrompts``) and answer questions by replacing its methods.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWidget

from .actions import shortcut_rows
from .document import EXCLUSION_REASONS

log = logging.getLogger("leukoscan.gui")


class CloseChoice(Enum):
    """The answer to "unexported reviews" when closing (or replacing) the cases on screen."""

    EXPORT = "export"  # export first: the window closes once the report is written
    DISCARD = "discard"  # close without exporting (the reviews stay in the case store)
    CANCEL = "cancel"  # keep the cases open


class Prompts:
    def __init__(self, parent: QWidget) -> None:
        self.parent = parent  # every dialog's parent

    # --- messages -----------------------------------------------------------------------------------
    def show_message(self, title: str, text: str, icon=QMessageBox.Icon.Warning) -> QMessageBox:
        """A non-blocking message box (the app keeps working behind it)."""
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self.parent)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        log.warning("%s: %s", title, text.replace("\n", " "))
        box.open()
        return box

    def note(self, title: str, text: str) -> None:
        """Kept in the log without a dialog: a status-bar message's record."""
        log.info("%s: %s", title, text.replace("\n", " "))

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in shortcut_rows())
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Keyboard shortcuts",
            f"<table>{rows}</table>",
            QMessageBox.StandardButton.Ok,
            self.parent,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.open()

    # --- questions ----------------------------------------------------------------------------------
    def ask_reviewer(self) -> str:
        name, ok = QInputDialog.getText(self.parent, "Reviewer", "Your name or staff ID (written into the report):")
        return name.strip() if ok else ""

    def ask_exclusion_reason(self, n: int) -> str:
        """Why ``n`` selected cells do not count (a common reason or the user's own words); "" = cancelled."""
        text, ok = QInputDialog.getItem(
            self.parent,
            "Exclude from % blasts",
            f"Exclude {n} cell(s) from % blasts, the counts and the interval.\n"
            "Reason (kept in the review history; Ctrl+Z undoes it):",
            list(EXCLUSION_REASONS),
            0,
            True,
        )
        return text.strip() if ok else ""

    def confirm_bulk_accept(self, n: int, left: list) -> bool:
        """Bulk accept of cells nobody has looked at yet (flagged, or ALL calls): they are listed first."""
        flagged = sum(1 for c in left if c.review_open)
        blasts = sum(1 for c in left if c.blast_unconfirmed and not c.review_open)
        what = " and ".join(
            t
            for t in (
                f"{flagged} flagged for review" if flagged else "",
                f"{blasts} ALL call(s) not confirmed" if blasts else "",
            )
            if t
        )
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Accept cells nobody has looked at?",
            f"The selection holds {n} cells, {what} (listed under Show Details).\n\n"
            "Accept the model's class for all of them?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self.parent,
        )
        box.setDetailedText(
            "\n".join(
                f"{c.file}  {c.prediction} P(ALL) {c.p_text()}" + ("  flagged" if c.review_open else "") for c in left
            )
        )
        box.button(QMessageBox.StandardButton.Yes).setText(f"Accept {n} cells")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return box.exec() == QMessageBox.StandardButton.Yes

    def ask_restore(self, path: Path, meta: dict) -> bool:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Restore session?",
            f"LeukoScan was not closed normally. Restore the session saved at "
            f"{meta.get('saved') or meta.get('started') or '?'}?\n\n"
            f"Cells: {meta.get('cells', '?')}   Reviewed cells: {meta.get('reviews', '?')}\n"
            "Results and reviews come back without classifying again.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self.parent,
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Restore")
        box.button(QMessageBox.StandardButton.No).setText("Not now")
        box.setInformativeText(
            f"'Not now' keeps it ({path.name}); it is offered again at the next start and "
            "can be opened with File ▸ Open case store."
        )
        return box.exec() == QMessageBox.StandardButton.Yes

    def ask_close(self, n_reviews: int, exported_at: str = "") -> CloseChoice:
        """Reviews (or a sample id, sign-off, threshold) changed since the last export (at ``exported_at``)."""
        since = f" (last export {exported_at[:16].replace('T', ' ')} UTC)" if exported_at else ""
        what = (
            f"{n_reviews} review(s) made or changed since the last export{since} have not been exported"
            if n_reviews
            else f"A sample id, sign-off or threshold changed since the last export{since}"
        )
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Unexported reviews",
            f"{what}.\n\nClosing never erases anything: the cells, results, reviews and sign-off stay in the "
            "case record, which opens again with the folder or File ▸ Find case record. Only the report file is "
            "not written.",
            parent=self.parent,
        )
        exp = box.addButton("Export…", QMessageBox.ButtonRole.AcceptRole)
        dis = box.addButton("Close without exporting", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(exp)
        box.exec()
        if box.clickedButton() is exp:
            return CloseChoice.EXPORT
        if box.clickedButton() is dis:
            return CloseChoice.DISCARD
        return CloseChoice.CANCEL

    def confirm_leave_unsaved(self, n_cells: int) -> bool:
        """Opening a case store while the cases on screen are in none (autosave off): True = close them."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Cases not saved",
            f"The {n_cells} cell(s) on screen are not saved in any case store (autosave is off).\n\n"
            "Opening a case store closes them; export your report first to keep them.",
            parent=self.parent,
        )
        go = box.addButton("Close them and open", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is go

    def ask_other_sample(self, text: str) -> bool:
        """A folder's images are not its case's (another sample): True = open the folder as a new case (the record
        shown is closed and kept as it is), False = keep the record shown, nothing added."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Not this case's images", text, parent=self.parent)
        new = box.addButton("Open as a new case", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep the record as it is", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        log.warning("Not this case's images: %s", text.replace("\n", " "))
        box.exec()
        return box.clickedButton() is new

    def choose_case(self, cases: list, current=None):
        """Which case (one patient) a PDF report is of: every case by sample id and folder in full, the current
        one preselected; None = cancelled."""
        items = [f"{c.sample_id or '(no sample id)'} — {c.name} — {c.root}" for c in cases]
        start = next((i for i, c in enumerate(cases) if c is current), 0)
        text, ok = QInputDialog.getItem(
            self.parent,
            "PDF report of which case?",
            f"{len(cases)} cases are open. A PDF report holds one patient; print:",
            items,
            start,
            False,
        )
        return cases[items.index(text)] if ok and text in items else None

    def choose_record(self, folder: str, records: list) -> Path | str | None:
        """Several case records hold ``folder``'s case: which one to open (its path), "" for a new record,
        None to cancel."""
        new = "A new record (classify the folder again)"
        items = [r.describe() for r in records] + [new]
        text, ok = QInputDialog.getItem(
            self.parent,
            "Open which case record?",
            f"{Path(folder).name} has {len(records)} case records. Open:",
            items,
            0,
            False,
        )
        if not ok:
            return None
        return "" if text == new else records[items.index(text)].path
