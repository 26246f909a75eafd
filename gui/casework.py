"""What the technician does with cases: models, threshold, opening folders, classification runs.
A mixin of :class:`gui.mainwindow.MainWindow` (kept apart from the layout); review and summary are in
:mod:`gui.review`, autosave/restore, export and closing in :mod:`gui.persistence`.

All state changes happen on the GUI thread; anything slow is handed to :class:`EngineService`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from .cells import Cell
from .session import SessionFiles, SessionState
from .persistence import PersistenceMixin
from .review import SUMMARY_REFRESH_MS, ReviewMixin
from .settings import user_data_dir

log = logging.getLogger("leukoscan.gui")
ADD_CHUNK = 2000  # rows added per event-loop turn when a folder is opened


class CaseWork(ReviewMixin, PersistenceMixin):
    # ------------------------------------------------------------------------------ setup
    def init_casework(self, check_orphans: bool) -> None:
        self.cards: dict[str, object] = {}
        self.model_problems: list[str] = []
        self.messages: list[tuple[str, str]] = []  # every message shown (tests and the log read it)
        self.classifier = None
        self.wanted_model: str | None = None
        self.threshold: float | None = None
        self.job: int | None = None
        self._run_cells: list[Cell] = []
        self._queue: list[Cell] = []
        self._adding: list[list] = []  # scanned items not yet added as rows (see _add_next_chunk)
        self._added_count = 0
        self._run_t0 = 0.0
        self._run_done = 0
        self._run_total = 0
        self._case_of_root: dict[str, str] = {}
        self._stale_reviews = 0
        self._saving = False
        self._save_again = False
        self._closing = False
        self.last_run: dict = {}
        self.last_export: list[str] = []

        self.session = SessionState()
        self.session_files = SessionFiles(user_data_dir())
        try:
            self.session_path = self.session_files.claim(self.session)
        except OSError as exc:  # read-only home etc.: the app works, without autosave
            self.session_path = None
            why = f"Your work cannot be autosaved ({exc}).\n\nLeukoScan works, but export your report before " \
                  "closing: a crash would lose the reviews."
            QTimer.singleShot(0, lambda: self.show_message("Autosave unavailable", why))

        s = self.service
        s.modelsListed.connect(self._models_listed)
        s.modelLoaded.connect(self._model_loaded)
        s.modelFailed.connect(self._model_failed)
        s.scanned.connect(self._scanned)
        s.resultsReady.connect(self._results)
        s.progress.connect(self._progress)
        s.runFinished.connect(self._run_finished)
        s.runFailed.connect(self._run_failed)
        s.exportDone.connect(self._export_done)
        s.exportFailed.connect(self._export_failed)
        s.sessionSaved.connect(self._session_saved)
        s.sessionSaveFailed.connect(self._session_save_failed)
        s.orphansFound.connect(self._orphans_found)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(SUMMARY_REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_summary)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._update_preview())
        self.gallery.selectionModel().selectionChanged.connect(lambda *_: self._update_preview())
        self.model.rowsInserted.connect(lambda *_: self._schedule_refresh())

        self.service.list_models()
        if check_orphans:
            self.service.find_orphans(self.session_files)

    # ------------------------------------------------------------------------------ models
    def reload_models(self) -> None:
        self.service.list_models()

    def _models_listed(self, cards: list, problems: list) -> None:
        self.cards = {c.name: c for c in cards}
        self.model_problems = list(problems)
        self.model_combo.clear()
        for c in cards:
            label = c.display_name + (f"  v{c.version}" if c.version else "")
            self.model_combo.addItem(label, c.name)
        self._update_banner()
        if not cards:
            self.device_label.setText("Model: <b>none installed</b>")
            return
        want = self.wanted_model or self.settings.model
        if want not in self.cards:
            want = self.service.default_model(cards)
        self.select_model(want)

    def _update_banner(self) -> None:
        lines = []
        if not self.cards:
            dirs = ", ".join(str(d) for d in self.service.registry_dirs()) or "the models folders"
            lines.append("<b>No usable model is installed.</b> Cells can be opened but not classified. "
                         f"Put a model (.onnx + .json card) into: {dirs}, then Classification ▸ Reload models.")
        if self.model_problems:
            lines.append("<b>Models that cannot be used:</b> " + "; ".join(self.model_problems[:4])
                         + (" …" if len(self.model_problems) > 4 else ""))
        self.update_banner(lines)

    def _model_chosen(self, index: int) -> None:
        name = self.model_combo.itemData(index)
        if name and name != (self.classifier.name if self.classifier else None):
            self.session.threshold = None  # a threshold belongs to its model: start at the new card's
            self.select_model(name)

    def select_model(self, name: str) -> None:
        """Load ``name`` in the background; results are re-computed with it once it is loaded."""
        self.wanted_model = name
        i = self.model_combo.findData(name)
        if i >= 0:
            self.model_combo.setCurrentIndex(i)
        self.device_label.setText(f"Model: loading {self.cards[name].display_name if name in self.cards else name}…")
        self.service.load_model(name, self.settings.device)

    def _model_loaded(self, clf) -> None:
        if clf.name != self.wanted_model:
            return  # superseded by a later choice
        previous = self.classifier
        self.classifier = clf
        self.settings.model = clf.name
        self.session.model = clf.name
        warn = "; ".join(getattr(clf, "warnings", []) or [])
        text = f"Model: <b>{clf.display_name}</b> &nbsp; Device: <b>{clf.device_label}</b>"
        if warn:
            text += f" &nbsp; <span style='color:#b9770e'>⚠ {warn}</span>"
            self.statusBar().showMessage(warn, 15000)
        self.device_label.setText(text)
        log.info("model %s %s loaded on %s%s", clf.name, clf.version, clf.active_provider, f" ({warn})" if warn else "")
        self.device_label.setToolTip(f"onnxruntime provider: {clf.active_provider}" + (f"\n{warn}" if warn else ""))
        thr = self.session.threshold if self.session.threshold is not None else clf.threshold
        self._set_threshold_widgets(thr, clf.threshold)
        self.threshold = thr
        if previous is not None and previous.name != clf.name:
            # another model: every cell is classified again with it (reviews are kept)
            self.service.cancel()
            self.job = None
            self._set_running(False)
            for c in self.model.cells:
                c.result, c.prediction, c.needs_review = None, None, False
            self._queue = list(self.model.cells)
            self.model.all_changed()
            self._schedule_refresh()
        else:
            for c in self.model.cells:
                self._decide(c)
            self.model.all_changed()
        self._autosave()
        self._maybe_start_run()

    def _model_failed(self, name: str, message: str) -> None:
        self.show_message("Model could not be loaded",
                          f"The model '{name}' could not be loaded:\n\n{message}\n\n"
                          "LeukoScan stays usable: choose another model.")
        if self.classifier is not None:
            self.wanted_model = self.classifier.name
            i = self.model_combo.findData(self.classifier.name)
            if i >= 0:
                self.model_combo.setCurrentIndex(i)
            self.device_label.setText(f"Model: <b>{self.classifier.display_name}</b> &nbsp; "
                                      f"Device: <b>{self.classifier.device_label}</b>")
        else:
            self.device_label.setText(f"Model: <span style='color:#c0392b'>{name} failed to load</span>")

    # ------------------------------------------------------------------------------ threshold
    def _set_threshold_widgets(self, value: float, default: float) -> None:
        self._thr_default = default
        for w in (self.thr_spin, self.thr_slider):
            w.blockSignals(True)
        self.thr_spin.setValue(value)
        self.thr_slider.setValue(round(value * 100))
        for w in (self.thr_spin, self.thr_slider):
            w.blockSignals(False)
        for w in (self.thr_spin, self.thr_slider, self.thr_reset):
            w.setEnabled(True)
        self._update_thr_note(value)

    def _update_thr_note(self, value: float) -> None:
        d = getattr(self, "_thr_default", None)
        if d is not None and abs(value - d) > 1e-9:
            self.thr_note.setText(f" <span style='color:#b9770e'><b>changed</b> (card {d:.3g})</span>")
        else:
            self.thr_note.setText(" (model card default)")

    def set_threshold(self, value: float) -> None:
        if self.classifier is None or (self.threshold is not None and abs(value - self.threshold) < 1e-9):
            return
        self.threshold = float(value)
        self._set_threshold_widgets(self.threshold, self.classifier.threshold)
        default = abs(self.threshold - self.classifier.threshold) < 1e-9
        self.session.threshold = None if default else self.threshold
        self.session.unexported = True
        for c in self.model.cells:
            self._decide(c)
        self.model.all_changed()
        self._schedule_refresh()
        self._autosave()

    def reset_threshold(self) -> None:
        if self.classifier is not None:
            self.set_threshold(self.classifier.threshold)

    def _decide(self, c: Cell) -> None:
        r = c.result
        if r is None or r.status != "ok":
            c.prediction, c.threshold, c.needs_review = None, None, False
            return
        c.prediction, c.needs_review = self.service.decide(
            r.p_all, self.threshold, self.classifier.review_margin, r.members_disagree, r.qc)
        c.threshold = self.threshold

    # ------------------------------------------------------------------------------ opening cases
    def open_paths(self, paths: list) -> None:
        """Open folders/files (dialog, drop, recent menu, command line): scan in the background."""
        paths = [str(Path(p).expanduser().absolute()) for p in paths if str(p).strip()]
        if not paths:
            return
        self.statusBar().showMessage("Looking for images in " + ", ".join(Path(p).name for p in paths) + " …")
        self.service.scan(paths)

    def _case_name(self, root: Path) -> str:
        key = str(root)
        name = self._case_of_root.get(key)
        if name is None:
            name = root.name or key
            used = set(self._case_of_root.values())
            if name in used:
                name = f"{root.name} ({root.parent.name or root.parent})"
            n = 2
            base = name
            while name in used:
                name, n = f"{base} {n}", n + 1
            self._case_of_root[key] = name
        return name

    def _scanned(self, items: list, problems: list, opened: list) -> None:
        for p in problems:
            self.messages.append(("Open", p))
        for path, is_dir in opened:  # what was opened (folders or single files): what a restore reopens
            if path not in self.session.folders:
                self.session.folders.append(path)
            if is_dir:
                self.settings.add_recent(path)
        for r in dict.fromkeys(str(it.root) for it in items):
            name = self._case_name(Path(r))
            if self.case_combo.findData(name) < 0:
                self.case_combo.addItem(name, name)
        if problems:
            self.show_message("Some paths could not be opened",
                              "\n".join(problems[:20]) + "\n\nReviews made earlier on these images are kept in the "
                              "session; they come back when the folder is available and opened again.")
        if not items and not problems:
            self.show_message("No images found", "No supported image files (BMP, PNG, JPEG, TIFF, WebP) were "
                              "found in the folder(s) you opened.", QMessageBox.Icon.Information)
        if items:
            self._adding.append(list(items))
            if len(self._adding) == 1:
                self._add_next_chunk()

    def _add_next_chunk(self) -> None:
        """Rows are added ADD_CHUNK at a time, yielding to the event loop in between, so opening a
        folder of 20,000 cells never freezes the window."""
        if not self._adding:
            return
        items = self._adding[0]
        chunk, rest = items[:ADD_CHUNK], items[ADD_CHUNK:]
        case_of = self._case_of_root
        cells = [Cell(it.path, it.root, it.folder, case_of[str(it.root)], it) for it in chunk]
        added = self.model.add_cells(cells)
        self._queue.extend(added)
        self._added_count += len(added)
        if added and not self.tabs.isVisible():
            self.welcome.hide()
            self.tabs.show()
            if not self.gallery.currentIndex().isValid():
                self._select_proxy_row(0)
            self.gallery.setFocus()
        if rest:
            self._adding[0] = rest
        else:
            self._adding.pop(0)
        if self._adding:
            self.statusBar().showMessage(f"Adding cells… {len(self.model.cells)}")
            QTimer.singleShot(0, self._add_next_chunk)
            return
        self.statusBar().showMessage(f"{self._added_count} new cell image(s) found", 5000)
        self._added_count = 0
        self._autosave()
        self._maybe_start_run()

    def close_cases(self) -> None:
        if self.session.unexported and self.session.reviews:
            if self.ask_close(len(self.session.reviews)) != "discard":
                return
        self.service.cancel()
        self.job = None
        self._queue, self._run_cells, self._adding = [], [], []
        self._set_running(False)
        self.model.clear()
        self._case_of_root.clear()
        self.case_combo.blockSignals(True)
        self.case_combo.clear()
        self.case_combo.addItem("All cases", "")
        self.case_combo.blockSignals(False)
        self.proxy.set_case(None)
        self.session.folders.clear()
        self.session.reviews.clear()
        self.session.unexported = False
        self.tabs.hide()
        self.welcome.show()
        self._autosave()
        self._schedule_refresh()

    def _case_chosen(self, _i: int) -> None:
        self.proxy.set_case(self.case_combo.currentData() or None)
        self._schedule_refresh()

    # ------------------------------------------------------------------------------ classification
    def _maybe_start_run(self) -> None:
        if self.job is not None or not self._queue or self.classifier is None or self._closing or self._adding:
            return
        cells = [c for c in self._queue if c.result is None]
        self._queue = []
        if not cells:
            return
        self._run_cells = cells
        self._run_t0 = time.monotonic()
        self._run_done, self._run_total = 0, len(cells)
        self.progress.setMaximum(len(cells))
        self.progress.setValue(0)
        self.eta_label.setText("starting…")
        self._set_running(True)
        self.statusBar().showMessage(f"Classifying {len(cells)} cells with {self.classifier.display_name} "
                                     f"on {self.classifier.device_label}…")
        self.job = self.service.start_run([c.item for c in cells], self.classifier, self.settings.batch_size)

    def classify_remaining(self) -> None:
        if self.job is not None:
            return
        self._queue = [c for c in self.model.cells if c.result is None]
        if not self._queue:
            self.statusBar().showMessage("Every cell is classified.", 4000)
        self._maybe_start_run()

    def cancel_run(self) -> None:
        if self.job is None:
            return
        self.service.cancel()
        self.statusBar().showMessage("Cancelling…")

    def _set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_btn.setVisible(running)
        self.act_cancel.setEnabled(running)
        self.eta_label.setVisible(running)
        self.act_export.setEnabled(not running)

    def _results(self, job: int, results: list) -> None:
        if job != self.job:
            return
        rows = []
        row_of = self.model.row_of
        reviews = self.session.reviews
        for r in results:
            c = self._run_cells[r.index]
            c.result = r
            self._decide(c)
            rec = reviews.get(c.key)
            if rec is not None and r.status == "ok":
                if rec.sha256 == r.sha256:
                    c.review = rec
                else:
                    c.review = None
                    self._stale_reviews += 1
            row = row_of(c.key)
            if row is not None:
                rows.append(row)
        self.model.rows_changed(rows)
        self._schedule_refresh()

    def _progress(self, job: int, done: int, total: int) -> None:
        if job != self.job:
            return
        self._run_done, self._run_total = done, total
        now = time.monotonic()
        if done < total and now - getattr(self, "_progress_shown", 0.0) < 0.25:
            return  # the bar and ETA are redrawn at most 4 times a second
        self._progress_shown = now
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(done)
        el = now - self._run_t0
        if done and el > 0:
            rate = done / el
            eta = (total - done) / rate
            self.eta_label.setText(f"{rate:.1f} cells/s · ETA {int(eta // 60)}:{int(eta % 60):02d}")

    def _run_finished(self, job: int, cancelled: bool, seconds: float) -> None:
        if job != self.job:
            return
        self.job = None
        self._set_running(False)
        n = self._run_done
        self.last_run = dict(cancelled=cancelled, done=n, total=self._run_total, seconds=seconds)
        log.info("run %s: %d of %d cells in %.1f s with %s", "cancelled" if cancelled else "finished", n,
                 self._run_total, seconds, self.classifier.name if self.classifier else "?")
        if cancelled:
            self.statusBar().showMessage(
                f"Cancelled: {n} of {self._run_total} cells classified. Classification ▸ Classify remaining "
                "(Ctrl+R) continues.", 15000)
        else:
            rate = n / seconds if seconds > 0 else 0
            self.statusBar().showMessage(f"Classified {n} cells in {seconds:.1f} s ({rate:.1f} cells/s).", 10000)
        if self._stale_reviews:
            self.show_message("Some reviews were not re-applied",
                              f"{self._stale_reviews} reviewed image(s) changed on disk since they were reviewed "
                              "(different content): their reviews were not applied to the new images.")
            self._stale_reviews = 0
        self._refresh_summary()
        if not cancelled:
            self._maybe_start_run()

    def _run_failed(self, job: int, message: str) -> None:
        if job != self.job:
            return
        self.job = None
        self._set_running(False)
        self.show_message("Classification stopped", f"The model failed while classifying:\n\n{message}\n\n"
                          "Cells classified so far are kept. Try another model or Classify remaining.")
