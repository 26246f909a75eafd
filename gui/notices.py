"""The notices above the cells: the amber model banner (no usable model, cards that cannot be used), the red
banner of a broken case record, and the welcome text shown while no case is open."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


class Notices:
    def __init__(self) -> None:
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet(
            "QLabel#banner { background:#fff3cd; color:#5c4400; padding:6px; border:1px solid #e0c36c; }"
        )
        self.banner.hide()
        self.record_banner = QLabel()  # a broken case record (engine.case.audit): red, until another is opened
        self.record_banner.setObjectName("recordBanner")
        self.record_banner.setWordWrap(True)
        self.record_banner.setStyleSheet("QLabel#recordBanner { background:#f8d7da; color:#721c24; padding:6px; }")
        self.record_banner.hide()
        self.welcome = QLabel(
            "<h2>Drop a case folder here</h2><p>or use <b>File ▸ Open folder…</b> (Ctrl+O).<br>"
            "Every image in the folder and its sub-folders is classified; each folder you open is a case.</p>"
            "<p style='color:#8a6d00'>Research tool, not a diagnostic device: every result needs review by a "
            "qualified person.</p>"
        )
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setObjectName("welcome")
        self.welcome.setStyleSheet("QLabel#welcome { color:#555; border:2px dashed #aaa; padding:30px; }")

    def show_models(self, lines: list) -> None:
        """The model banner's lines (html); none: hidden."""
        self.banner.setText("<br>".join(lines))
        self.banner.setVisible(bool(lines))

    def show_broken(self, broken: str) -> None:
        """Why the record shown is broken ("" when it is intact: hidden)."""
        self.record_banner.setText(
            f"<b>This case record is broken:</b> {broken}. Its reviews and sign-off cannot "
            "be trusted and reports of it are refused (nothing was deleted)."
            if broken
            else ""
        )
        self.record_banner.setVisible(bool(broken))
