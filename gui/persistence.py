"""Autosave/restore of the session, report export and closing.
A mixin of :class:`gui.mainwindow.MainWindow` (through :class:`gui.casework.CaseWork`)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from .session import SessionState, utc_now


log = logging.getLogger("leukoscan.gui")


class PersistenceMixin:
    # ------------------------------------------------------------------------------ autosave
    def _autosave(self) -> None:
        """Write the session now (or right after the write in flight): every change is on disk."""
        if self.session_path is None:
            return
        if self._saving:
            self._save_again = True
            return
        self._saving = True
        self.service.save_session(self.session_path, self.session.copy())

    def _session_saved(self, _path: str) -> None:
        self._saving = False
        if self._save_again:
            self._save_again = False
            self._autosave()

    def _session_save_failed(self, message: str) -> None:
        self._saving = False
        self.statusBar().showMessage(f"Autosave failed: {message}", 15000)
        if not any(t == "Autosave failed" for t, _ in self.messages):  # one dialog, then the status bar
            self.show_message("Autosave failed", f"Your reviews could not be autosaved:\n{message}\n\nLeukoScan "
                              "keeps trying after every change. Export the report to keep your work safe.")
        else:
            self.messages.append(("Autosave failed", message))
        if self._save_again:  # a later change is waiting: try again with it
            self._save_again = False
            self._autosave()

    def _orphans_found(self, found: list) -> None:
        if not found:
            return
        path, state = found[0]
        if not (state.folders or state.reviews):
            self.service.remove_file(path)
            return
        if self.ask_restore(path, state):
            self.restore_session(path, state)

    def restore_session(self, path: Path, state: SessionState) -> None:
        """Adopt an orphaned session: its reviews, threshold, model and folders; then drop its file."""
        self.session.reviews.update(state.reviews)
        self.session.threshold = state.threshold
        self.session.unexported = state.unexported or bool(state.reviews)
        self.session.exported_at = state.exported_at
        for f in state.folders:
            if f not in self.session.folders:
                self.session.folders.append(f)
        if state.model and not self.cards:
            self.wanted_model = state.model  # models not listed yet: _models_listed picks it
        elif state.model in self.cards and (self.classifier is None or self.classifier.name != state.model):
            self.select_model(state.model)
        elif self.classifier is not None:
            thr = state.threshold if state.threshold is not None else self.classifier.threshold
            self._set_threshold_widgets(thr, self.classifier.threshold)
            self.threshold = thr
            for c in self.model.cells:
                self._decide(c)
        # already classified cells (none, usually) get their reviews now
        for c in self.model.cells:
            rec = self.session.reviews.get(c.key)
            if rec is not None and c.result is not None and rec.sha256 == c.result.sha256:
                c.review = rec
        self.model.all_changed()
        if state.folders:
            # a folder that is gone now is reported by the scan; its reviews stay in the session
            self.open_paths(state.folders)
        self._autosave()
        self.service.remove_file(path)

    # ------------------------------------------------------------------------------ export
    def can_export(self, interactive: bool = False) -> bool:
        why = ""
        if self.classifier is None:
            why = "No model is loaded."
        elif self.job is not None:
            why = "Classification is still running: wait for it to finish or cancel it first."
        elif not any(c.result is not None for c in self.model.cells):
            why = "No classified cells to export."
        if why and interactive:
            self.show_message("Cannot export yet", why, QMessageBox.Icon.Information)
        return not why

    def default_report_name(self) -> str:
        cases = list(self._case_of_root.values())
        base = cases[0] if len(cases) == 1 else "cases"
        base = re.sub(r"[^\w.-]+", "_", base).strip("_") or "cases"
        return f"{base}_leukoscan_{time.strftime('%Y%m%d-%H%M')}.csv"

    def export_to(self, cells_csv: Path) -> bool:
        """Write ``cells_csv`` and ``<stem>_summary.csv`` beside it (in the background)."""
        if not self.can_export(interactive=True):
            return False
        cells_csv = Path(cells_csv)
        summary_csv = cells_csv.with_name(cells_csv.stem + "_summary.csv")
        snapshot = [(c.result, c.review) for c in self.model.cells if c.result is not None]
        pending = sum(1 for c in self.model.cells if c.result is None)
        if pending:
            self.messages.append(("Export", f"{pending} cells not classified (cancelled run) are not in the report"))
        self._export_pending = pending
        self.statusBar().showMessage(f"Writing {cells_csv} …")
        self.service.export(cells_csv, summary_csv, snapshot, self.classifier, self.threshold)
        return True

    def _export_done(self, paths: list) -> None:
        self.last_export = list(paths)
        log.info("report written: %s", ", ".join(paths))
        self.session.exported_at = utc_now()
        self.session.unexported = False
        self.settings.last_export_dir = str(Path(paths[0]).parent)
        self._autosave()
        self._schedule_refresh()
        extra = ""
        if getattr(self, "_export_pending", 0):
            extra = f" ({self._export_pending} unclassified cells left out)"
        self.statusBar().showMessage("Report written: " + "  ·  ".join(paths) + extra, 20000)
        if getattr(self, "_close_after_export", False):
            self._close_after_export = False
            self.close()

    def _export_failed(self, message: str) -> None:
        self._close_after_export = False
        self.show_message("Export failed", f"The report could not be written:\n\n{message}\n\n"
                          "Nothing is lost: your reviews are autosaved. Choose another folder and export again.")

    # ------------------------------------------------------------------------------ closing
    def confirm_close(self) -> bool:
        if self._closing:
            return True
        if self.session.unexported and (self.session.reviews or self.session.threshold is not None):
            choice = self.ask_close(len(self.session.reviews))
            if choice == "cancel":
                return False
            if choice == "export":
                if self.job is not None:
                    self.service.cancel()
                    self.service.wait(2.0)
                self._close_after_export = True
                self.export_dialog()
                return False  # closes after the export finished
        return True

    def shutdown(self) -> None:
        """Stop work, flush the autosave, release (and delete: the user closed normally) the session."""
        self._closing = True
        self.service.cancel()
        try:
            self.save_geometry()
        except Exception:  # settings not writable: not worth an error at exit
            pass
        try:
            self.service.flush()
        except Exception:
            pass
        self.service.shutdown()
        self.thumbs.close()
        self.preview.close_loader()
        self.session_files.release(delete=True)
