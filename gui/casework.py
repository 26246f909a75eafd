"""What the technician does with cases: open, classify (via the service), review, threshold,
autosave/restore, export.  A mixin of :class:`gui.mainwindow.MainWindow` (kept apart from the layout).

All state changes happen on the GUI thread; anything slow is handed to :class:`EngineService`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QTimer
from PySide6.QtWidgets import QMessageBox

from .cells import ERROR, OK, PENDING, Cell
from .session import ReviewRecord, SessionFiles, SessionState, utc_now
from .settings import user_data_dir
from .summary import ALL_CASES, count_cases

SUMMARY_REFRESH_MS = 150
ADD_CHUNK = 2000  # rows added per event-loop turn when a folder is opened


class CaseWork:
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
            self.messages.append(("Autosave unavailable", str(exc)))

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
            ens = [c.name for c in cards if c.is_ensemble]
            want = ens[0] if ens else cards[0].name
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
            self.thr_note.setText(f" <span style='color:#b9770e'><b>changed</b> (card {d:.2f})</span>")
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
            c.prediction, c.needs_review = None, False
            return
        c.prediction, c.needs_review = self.service.decide(
            r.p_all, self.threshold, self.classifier.review_margin, r.members_disagree)

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
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(done)
        el = time.monotonic() - self._run_t0
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

    # ------------------------------------------------------------------------------ review
    def selected_cells(self) -> list[Cell]:
        sm = self.gallery.selectionModel()
        rows = sorted({i.row() for i in sm.selectedIndexes()})
        cells = [self.proxy.cell_at(r) for r in rows]
        if not cells:
            c = self.current_cell()
            cells = [c] if c is not None else []
        return [c for c in cells if c is not None]

    def current_cell(self) -> Cell | None:
        idx = self.gallery.currentIndex()
        return self.proxy.cell_at(idx.row()) if idx.isValid() else None

    def _reviewer(self) -> str:
        name = self.settings.reviewer
        if not name:
            name = self.ask_reviewer()
            if name:
                self.settings.reviewer = name
        return name

    def review_selected(self, kind: str) -> int:
        """``kind``: "ALL" | "HEM" | "accept" | "clear".  Returns the number of cells changed."""
        cells = [c for c in self.selected_cells() if c.status == OK]
        if not cells:
            self.statusBar().showMessage("Select classified cells to review (error and pending cells cannot be "
                                         "reviewed).", 5000)
            return 0
        if kind != "clear":
            reviewer = self._reviewer()
            if not reviewer:
                self.statusBar().showMessage("A reviewer name is needed (File ▸ Settings).", 6000)
                return 0
        cur = self.gallery.currentIndex()
        cur_row = cur.row() if cur.isValid() else 0
        cur_key = self.current_cell().key if self.current_cell() else None
        now = utc_now()
        changed = []
        for c in cells:
            if kind == "clear":
                if c.review is None:
                    continue
                c.review = None
                self.session.reviews.pop(c.key, None)
            else:
                label = c.prediction if kind == "accept" else kind
                c.review = ReviewRecord(label, reviewer, now, c.result.sha256, c.prediction, c.p_all)
                self.session.reviews[c.key] = c.review
            changed.append(self.model.row_of(c.key))
        if not changed:
            return 0
        self.session.unexported = True
        self.model.rows_changed([r for r in changed if r is not None])
        self._autosave()
        self._schedule_refresh()
        if len(cells) == 1 and kind != "clear":
            # the reviewed cell may have left the filtered view: stay at the same place, else advance
            still = self.proxy.proxy_row_of(cur_key) if cur_key else None
            if still is None:
                self._select_proxy_row(min(cur_row, self.proxy.rowCount() - 1))
            elif self.settings.auto_advance:
                self._select_proxy_row(min(still + 1, self.proxy.rowCount() - 1))
        self._update_preview()
        return len(changed)

    def next_needs_review(self, backwards: bool = False) -> bool:
        n = self.proxy.rowCount()
        if n == 0:
            return False
        cur = self.gallery.currentIndex()
        start = cur.row() if cur.isValid() else -1
        step = -1 if backwards else 1
        for k in range(1, n + 1):
            r = (start + step * k) % n
            c = self.proxy.cell_at(r)
            if c is not None and c.needs_review and c.review is None:
                self._select_proxy_row(r)
                return True
        hidden = sum(1 for c in self.model.cells if c.needs_review and c.review is None)
        msg = "No cell left to review" + (f" in this view ({hidden} hidden by the filter)." if hidden else ".")
        self.statusBar().showMessage(msg, 6000)
        return False

    def _select_proxy_row(self, row: int) -> None:
        if row < 0 or row >= self.proxy.rowCount():
            return
        idx = self.proxy.index(row, 0)
        self.gallery.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.gallery.scrollTo(idx)
        if self.tabs.currentWidget() is self.table:
            self.table.scrollTo(idx)

    def _update_preview(self) -> None:
        cells = self.gallery.selectionModel().selectedRows() if self.gallery.selectionModel() else []
        self.preview.show_cell(self.current_cell(), max(1, len(cells)))

    # ------------------------------------------------------------------------------ summary
    def _schedule_refresh(self) -> None:
        if not self._refresh_timer.isActive():
            # the summary walks every cell: refresh less often for very large sets
            self._refresh_timer.setInterval(SUMMARY_REFRESH_MS if len(self.model.cells) < 5000 else 500)
            self._refresh_timer.start()

    def _refresh_summary(self) -> None:
        cells = self.model.cells
        self.summary.set_counts(count_cases(cells))
        case = self.proxy.case
        ps = [c.p_all for c in cells if c.status == OK and (case is None or c.case == case)]
        margin = self.classifier.review_margin if self.classifier else 0.0
        self.histogram.set_data(ps, self.threshold or 0.5, margin,
                                f"P(ALL) — {case or (ALL_CASES if len(self._case_of_root) > 1 else 'case')}"
                                f" ({len(ps)} cells)")
        self.preview.refresh()
        n, shown = len(cells), self.proxy.rowCount()
        self.shown_label.setText(f"{shown} of {n} cells shown" if shown != n else f"{n} cells")
        title = "LeukoScan"
        if self._case_of_root:
            title += " — " + ", ".join(list(self._case_of_root.values())[:3])
        if self.session.unexported:
            title += " *"
        self.setWindowTitle(title)

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
        self.messages.append(("Autosave failed", message))

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
            self.service.flush()
        except Exception:
            pass
        self.service.shutdown()
        self.thumbs.close()
        self.preview.close_loader()
        self.session_files.release(delete=True)
