"""What a technician does with a whole case: its sample id, sign-off and reopening.

The rules (when a case may be signed off, what a sign-off locks) are the case document's; this class
asks the person (reviewer, comment, reason) and reports in the status bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMessageBox

from .document import local_time


class Reviewer(Protocol):
    """Who signs off or reopens (gui.review_actions.ReviewActions: the settings' name, asked once)."""

    def reviewer(self) -> str: ...


class CaseActions(QObject):
    status = Signal(str, int)
    changed = Signal()

    def __init__(self, bridge, browser, reviews: Reviewer, prompts, walk: Callable[[], None], parent=None) -> None:
        """``browser`` says which case is current; ``reviews`` asks for the reviewer; ``walk`` starts
        review-flagged mode (offered when a sign-off is refused)."""
        super().__init__(parent)
        self.bridge, self.browser, self.reviews, self.prompts, self.walk = bridge, browser, reviews, prompts, walk

    @property
    def doc(self):
        return self.bridge.doc

    def current_case(self):
        """The case of the current cell, else the one the Case filter shows, else the only one."""
        cell = self.browser.current_cell()
        case = self.doc.case_named(cell.case) if cell is not None else None
        if case is None and self.browser.proxy.case:
            case = self.doc.case_named(self.browser.proxy.case)
        if case is None and len(self.doc.cases) == 1:
            case = next(iter(self.doc.cases.values()))
        return case

    def edit_sample_id(self) -> None:
        case = self.current_case()
        if case is None:
            self.status.emit("Select a cell of the case first.", 5000)
            return
        if case.signoff is not None:
            self.prompts.show_message(
                "Sample ID not changed",
                f"{case.label} is signed off: reopen it (Review ▸ Reopen case) to change its sample id.",
                QMessageBox.Icon.Information,
            )
            return
        text, ok = QInputDialog.getText(
            self.prompts.parent,
            "Case/sample ID",
            f"Sample or case ID of {case.name}:",
            QLineEdit.EchoMode.Normal,
            case.sample_id or case.name,
        )
        if ok:
            try:
                self.doc.set_sample_id(case, text if text.strip() != case.name else "")
            except ValueError as exc:  # signed off: the id is part of what was signed
                self.prompts.show_message("Sample ID not changed", f"{exc}.", QMessageBox.Icon.Information)

    def sign_off(self) -> bool:
        """Sign the current case off (reviewer, time, optional comment); refused, with the reason, while
        cells are unclassified or flagged cells are unreviewed."""
        case = self.current_case()
        if case is None:
            self.status.emit("Select a cell of the case to sign off.", 5000)
            return False
        if case.signoff is None and not case.sample_id.strip() and not any(self.doc.left_before_signoff(case)):
            if not self._give_sample_id(case):
                return False
        ok, why = self.doc.can_sign_off(case)
        if not ok:
            self.offer_walk(case, why)
            return False
        if not case.sample_id.strip():  # the rule of the signed report: it names its patient
            self.prompts.show_message(
                "Cannot sign off yet",
                f"{case.label} has no sample id: a signed report names its patient (File ▸ Case/sample ID).",
                QMessageBox.Icon.Information,
            )
            return False
        reviewer = self.reviews.reviewer()
        if not reviewer:
            return False
        comment, accepted = self.ask_comment(case, reviewer)
        if not accepted:
            return False
        so = self.doc.sign_off(case, reviewer, comment)
        self.status.emit(f"{case.label} signed off by {so.by} at {local_time(so.at)}. Its reviews are locked.", 10000)
        self.changed.emit()
        return True

    def _give_sample_id(self, case) -> bool:
        """Sign-off asks for the sample id of a case that has none (a signed report names its patient)."""
        text = self.ask_sample_id(case)
        if not text.strip():
            self.prompts.show_message(
                "Not signed off",
                f"{case.label}: a sample id is needed to sign off (a signed report names its patient).",
                QMessageBox.Icon.Information,
            )
            return False
        try:
            self.doc.set_sample_id(case, text)
        except ValueError as exc:
            self.prompts.show_message("Not signed off", f"{exc}.", QMessageBox.Icon.Information)
            return False
        return True

    def ask_sample_id(self, case) -> str:
        text, ok = QInputDialog.getText(
            self.prompts.parent,
            "Sample ID needed to sign off",
            f"{case.name} has no sample id.\nFolder: {case.root}\n\nSample ID (printed on the signed report):",
        )
        return text.strip() if ok else ""

    def offer_walk(self, case, why: str) -> QMessageBox:
        """Says exactly what is left, and offers to walk those cells (review-flagged mode) at once."""
        box = self.prompts.show_message(
            "Cannot sign off yet",
            f"{case.label}: {why}.\n\nEvery ALL call and every flagged cell must be seen by a person before sign-off.",
            QMessageBox.Icon.Information,
        )
        walk = box.addButton("Walk them now (F)", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(walk)
        walk.clicked.connect(self.walk)
        return box

    def reopen(self) -> bool:
        case = self.current_case()
        if case is None or case.signoff is None:
            self.status.emit("The current case is not signed off.", 5000)
            return False
        reviewer = self.reviews.reviewer()
        reason = self.ask_reason(case) if reviewer else ""
        if not reason:
            self.status.emit("Not reopened: a reason is needed (it is kept in the case store).", 6000)
            return False
        self.doc.reopen(case, reviewer, reason)
        self.status.emit(f"{case.label} reopened by {reviewer}: {reason}", 10000)
        self.changed.emit()
        return True

    def ask_comment(self, case, reviewer: str) -> tuple[str, bool]:
        counts = next((cc for cc in self.doc.counts() if cc.case == case.name), None)
        pct = (
            ""
            if counts is None or counts.pct_blasts is None
            else f"\n% blasts {counts.pct_blasts:.1f} (95% CI {counts.pct_interval[0]:.1f}–{counts.pct_interval[1]:.1f})"
        )
        text, ok = QInputDialog.getText(
            self.prompts.parent,
            "Sign off case",
            f"Sign off {case.label} as {reviewer}.{pct}\n\nOptional comment (written into the reports):",
        )
        return text.strip(), ok

    def ask_reason(self, case) -> str:
        text, ok = QInputDialog.getText(
            self.prompts.parent,
            "Reopen case",
            f"{case.label} was signed off by {case.signoff.by} at "
            f"{local_time(case.signoff.at)}.\n\nWhy is it reopened? "
            "(kept in the case store)",
        )
        return text.strip() if ok else ""
