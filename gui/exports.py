"""Exports: the CSV report (with summary and review history) and the printable PDF, one at a time.

The request in flight carries what should happen once it is written (close the window, when the export
was chosen in the close prompt), so a refused, cancelled or failed export can never close the window later
by surprise.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

log = logging.getLogger("leukoscan.gui")


class RunState(Protocol):
    """What an export needs of the runs (gui.run_controller.RunController): a report is not taken mid-run."""

    @property
    def running(self) -> bool: ...


class RecordState(Protocol):
    """What an export needs of the case files (gui.case_files.CaseFiles): a broken record is never reported."""

    broken: str


@dataclass
class ExportRequest:
    path: Path
    close_after: bool = False
    pending: int = 0  # unclassified cells left out
    revision: int = -1  # the document's revision the report was taken at


class ExportFlow(QObject):
    written = Signal(object)  # list[str]: the paths written (object: Signal(list) would copy it to a QVariantList)
    failed = Signal(str)  # why the report could not be written (after the dialog said so)
    closeRequested = Signal()  # the export the close prompt asked for is written
    status = Signal(str, int)

    def __init__(
        self,
        service,
        bridge,
        runs: RunState,
        case_files: RecordState,
        settings,
        prompts,
        current_case: Callable[[], object],
        parent=None,
    ) -> None:
        """``current_case()``: the case the user is on (preselected when a PDF asks which case)."""
        super().__init__(parent)
        self.service, self.bridge, self.runs, self.case_files = service, bridge, runs, case_files
        self.settings, self.prompts, self.current_case = settings, prompts, current_case
        self.request: ExportRequest | None = None
        self.last: list[str] = []

    @property
    def doc(self):
        return self.bridge.doc

    def why_not(self) -> str:
        """Why an export cannot start now ("" when it can)."""
        if self.doc.current is None:
            return "No model is loaded."
        broken = self.case_files.broken
        if broken:
            return (
                f"This case record is broken ({broken}): a report would present it as valid. Nothing was "
                "deleted; leukoscan-cli verify says where."
            )
        if self.runs.running:
            return "Classification is still running: wait for it to finish or cancel it first."
        if self.request is not None:
            return "A report is being written."
        if not any(c.result is not None for c in self.doc.cells):
            return "No classified cells to export."
        return ""

    def can_export(self, interactive: bool = False) -> bool:
        why = self.why_not()
        if why and interactive:
            self.prompts.show_message("Cannot export yet", why, QMessageBox.Icon.Information)
        return not why

    def default_name(self, suffix: str = ".csv", case=None) -> str:
        cases = [case.label] if case is not None else [c.label for c in self.doc.cases.values()]
        base = cases[0] if len(cases) == 1 else "cases"
        base = re.sub(r"[^\w.-]+", "_", base).strip("_") or "cases"
        return f"{base}_leukoscan_{time.strftime('%Y%m%d-%H%M')}{suffix}"

    def folder(self) -> str:
        """The last export folder, else the case's folder, else home."""
        last = self.settings.last_export_dir
        if last and Path(last).is_dir():
            return last
        roots = [Path(c.root) for c in self.doc.cases.values()]
        return str(roots[0] if len(roots) == 1 and roots[0].is_dir() else Path.home())

    def csv_dialog(self, close_after: bool = False) -> bool:
        if not self.can_export(interactive=True):
            return False
        pending = len(self.doc.unclassified())
        if pending:
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Export an incomplete report?",
                f"{pending} cell(s) were not classified (the run was cancelled), so they will not be "
                "in the report.\n\nClassification ▸ Classify remaining (Ctrl+R) classifies them first.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                self.prompts.parent,
            )
            box.button(QMessageBox.StandardButton.Yes).setText("Export without them")
            if box.exec() != QMessageBox.StandardButton.Yes:
                return False
        start = Path(self.folder()) / self.default_name()
        path, _ = QFileDialog.getSaveFileName(self.prompts.parent, "Export report", str(start), "CSV (*.csv)")
        if not path:
            return False
        return self.csv(Path(path if path.lower().endswith(".csv") else path + ".csv"), close_after=close_after)

    def printable_cases(self) -> list:
        """The cases with classified cells: each is one PDF (one patient)."""
        return [case for case in self.doc.cases.values() if any(c.result is not None for c in self.doc.cells_of(case))]

    def pdf_dialog(self) -> bool:
        """Ctrl+P: one PDF per patient.  With several cases open, the user chooses which (the current one first)."""
        if not self.can_export(interactive=True):
            return False
        cases = self.printable_cases()
        case = cases[0] if len(cases) == 1 else self.prompts.choose_case(cases, self.current_case())
        if case is None:
            return False
        start = Path(self.folder()) / self.default_name(".pdf", case)
        path, _ = QFileDialog.getSaveFileName(
            self.prompts.parent, f"Export PDF report of {case.label}", str(start), "PDF (*.pdf)"
        )
        if not path:
            return False
        return self.pdf(Path(path if path.lower().endswith(".pdf") else path + ".pdf"), case)

    def pdf(self, pdf: Path, case=None) -> bool:
        """Write the PDF of one ``case`` (may be None only when one case has classified cells): a PDF never holds
        two patients."""
        if not self.can_export(interactive=True):
            return False
        cases = self.printable_cases()
        if case is None and len(cases) == 1:
            case = cases[0]
        if case is None:
            self.prompts.show_message(
                "Choose the case",
                f"{len(cases)} cases are open: a PDF report holds one patient. Choose the case to print.",
                QMessageBox.Icon.Information,
            )
            return False
        self.request = ExportRequest(Path(pdf))
        self.status.emit(f"Writing {pdf} ({case.label}) …", 0)
        self.request.revision = self.service.export_pdf(
            Path(pdf),
            self.doc,
            [c for c in self.doc.cells_of(case) if c.result is not None],
            self.bridge.store,  # its chain head is printed under the signature
            on_done=self._done,
            on_failed=self._failed,
        )
        return True

    def csv(self, cells_csv: Path, close_after: bool = False) -> bool:
        """Write ``cells_csv``, ``<stem>_summary.csv`` and ``<stem>_reviews.csv`` beside it (in the background)."""
        if not self.can_export(interactive=True):
            return False
        cells_csv = Path(cells_csv)
        cells = [c for c in self.doc.cells if c.result is not None]
        pending = len(self.doc.cells) - len(cells)
        if pending:
            self.prompts.note("Export", f"{pending} cells not classified (cancelled run) are not in the report")
        self.request = ExportRequest(cells_csv, close_after, pending)
        self.status.emit(f"Writing {cells_csv} …", 0)
        self.request.revision = self.service.export(
            cells_csv,
            cells_csv.with_name(cells_csv.stem + "_summary.csv"),
            self.doc,
            cells,
            self.bridge.store,
            bom=self.settings.csv_bom,
            on_done=self._done,
            on_failed=self._failed,
        )
        return True

    def _done(self, paths: list) -> None:
        req, self.request = self.request, None
        self.last = list(paths)
        log.info("report written: %s", ", ".join(paths))
        extra = f" ({req.pending} unclassified cells left out)" if req is not None and req.pending else ""
        if not str(paths[0]).lower().endswith(".pdf"):  # the CSV report is the record; a PDF is a print of it
            if req is not None and req.revision == self.doc.revision:
                self.doc.mark_exported()
            else:  # changed while it was written: not in the report, so closing still asks
                extra += "; changes made while it was written are not in it: export again"
        self.settings.last_export_dir = str(Path(paths[0]).parent)
        self.status.emit("Report written: " + "  ·  ".join(paths) + extra, 20000)
        self.written.emit(list(paths))
        if req is not None and req.close_after:
            self.closeRequested.emit()

    def _failed(self, message: str) -> None:
        self.request = None  # a close that waited for this export does not happen later by surprise
        self.prompts.show_message(
            "Export failed",
            f"The report could not be written:\n\n{message}\n\nNothing is "
            "lost: your work is in the case store. Choose another folder and export again.",
        )
        self.failed.emit(message)
