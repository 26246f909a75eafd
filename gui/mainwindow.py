"""The main window: it owns a case document (through :class:`DocumentBridge`), a run controller, the
case-store keeper and small widgets, and wires them together.  No mixins: the state of the cases lives
in the document, runs in :class:`RunController`, reviews in :class:`ReviewActions`, the store in
:class:`CaseFiles`; this class lays out widgets and turns their signals into calls."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow, QMenu,
    QMessageBox, QProgressBar, QPushButton, QSplitter, QToolBar, QVBoxLayout, QWidget,
)

from . import __version__
from .actions import build_actions, build_menus, shortcut_rows
from .browser import CellBrowser
from .case_files import CaseFiles
from .cells import CellModel
from .dialogs import AboutDialog, ModelInfoDialog, SettingsDialog
from .case_actions import CaseActions
from .exports import ExportFlow
from .filter_bar import FilterBar
from .model_chooser import ModelChooser
from .document import ALL_CASES, DocumentBridge, model_basis
from .icon import app_icon
from .preview import PreviewPanel
from .review_actions import ReviewActions
from .run_controller import RunController, RunFinished, RunProgress, RunState
from .service import EngineService, ScanResult
from .settings import Settings, user_data_dir
from .summary import Histogram, SummaryTable
from .thumbs import ImageLoader
from .threshold_bar import ThresholdBar

log = logging.getLogger("leukoscan.gui")
ADD_CHUNK = 2000  # rows added per event-loop turn when a folder is opened
SUMMARY_REFRESH_MS = 150


class MainWindow(QMainWindow):
    def __init__(self, service: EngineService | None = None, settings: Settings | None = None,
                 check_orphans: bool = True, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.service = service or EngineService()
        self.service.setParent(self)
        self.setWindowTitle("LeukoScan")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self.messages: list[tuple[str, str]] = []  # every message shown (tests and the log read it)
        self.last_run: RunFinished | None = None
        self._adding: list[list] = []  # scanned items not yet added (see _add_next_chunk)
        self._scanning: list[frozenset] = []  # paths of the scans running for the document shown (see _scanned)
        self._added = 0
        self._stale_reviews = 0
        self._closing = False
        self._close_after_run_stop = False
        self._held_paths: list[str] = []  # command-line paths, opened once the restore question is answered
        self._after_record: list[str] = []  # paths opened with a folder whose record is being opened: opened after it
        self._orphans_checked = not check_orphans

        self.bridge = DocumentBridge(parent=self)
        self.thumbs = ImageLoader(size=self.settings.thumb_size, parent=self)
        self.model = CellModel(self.thumbs, self)
        self.browser = CellBrowser(self.model, self.thumbs, self.settings.thumb_size)
        self.browser.contextMenuRequested.connect(self._context_menu)
        self.proxy, self.gallery, self.table = self.browser.proxy, self.browser.gallery, self.browser.table
        self.tabs = self.browser
        self.runs = RunController(self.service, self.bridge, self)
        self.models = ModelChooser(self.service, self.settings, self)
        self.model_combo, self.device_label = self.models.combo, self.models.device_label
        self.reviews = ReviewActions(self.browser, self.bridge, self.settings, self.ask_reviewer,
                                     self.confirm_bulk_accept, self,
                                     ask_exclusion=lambda n: self.ask_exclusion_reason(n))
        self.case_files = CaseFiles(self.service, self.bridge, user_data_dir(), self)
        self.exports = ExportFlow(self, self)
        self.case_actions = CaseActions(self, self)

        self._build_views()
        self.acts = build_actions(self)  # every command's callable bound now: a misspelt one fails here
        build_menus(self, self.acts, self._fill_recent)
        self._build_toolbar()
        self._build_statusbar()
        self._restore_geometry()
        self._connect()
        self.service.list_models()
        self.case_files.start(check_orphans)

    # ------------------------------------------------------------------------------ state shortcuts
    @property
    def doc(self):
        return self.bridge.doc

    @property
    def threshold(self) -> float | None:
        return self.doc.threshold

    @property
    def session_path(self) -> Path | None:
        return self.case_files.path

    def current_cell(self):
        return self.browser.current_cell()

    def select_row(self, row: int) -> None:
        self.browser.select_row(row)

    def review_selected(self, kind: str) -> int:
        return self.reviews.exclude() if kind == "exclude" else self.reviews.review(kind)

    def next_review_open(self, backwards: bool = False) -> bool:
        return self.reviews.next_open(backwards)

    # ------------------------------------------------------------------------------ wiring
    def _connect(self) -> None:
        s, b = self.service, self.bridge
        self.models.loaded.connect(self._model_loaded)
        self.models.bannerChanged.connect(self._show_banner)
        self.models.status.connect(self.statusBar().showMessage)
        self.models.failed.connect(lambda t, m: self.show_message(t, m))
        s.scanned.connect(self._scanned)
        self.exports.status.connect(self.statusBar().showMessage)
        self.case_actions.status.connect(self.statusBar().showMessage)
        self.case_actions.changed.connect(self._reviews_changed)  # a sign-off locks undo/redo of its cells
        self.exports.written.connect(lambda _p: self._schedule_refresh())
        self.exports.closeRequested.connect(self.close)
        b.cellsAdded.connect(self._cells_added)
        b.cellsChanged.connect(self._cells_changed)
        b.decisionsChanged.connect(self._decisions_changed)
        b.casesChanged.connect(self._cases_changed)
        b.replaced.connect(self._document_replaced)
        b.staleFound.connect(self._stale_found)
        b.storeFailed.connect(self._store_failed)
        b.reviewsChanged.connect(lambda _step: self._reviews_changed())
        self.runs.stateChanged.connect(self._run_state)
        self.runs.progressed.connect(self._run_progress)
        self.runs.finished.connect(self._run_finished)
        self.runs.failed.connect(self._run_failed)
        self.reviews.status.connect(self.statusBar().showMessage)
        self.reviews.changed.connect(self._update_preview)
        # the document announces a step before it is on its undo/redo stack: the actions' state is read after
        self.reviews.changed.connect(self._reviews_changed)
        cf = self.case_files
        cf.message.connect(lambda t, m: self.show_message(t, m))
        cf.status.connect(self.statusBar().showMessage)
        cf.askRestore.connect(self._ask_restore)
        cf.adopted.connect(self._store_adopted)
        cf.orphansChecked.connect(self._orphans_done)
        self.browser.selectionChanged.connect(self._update_preview)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(SUMMARY_REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_summary)

    def _restore_geometry(self) -> None:
        geo, split = self.settings.value("window/geometry"), self.settings.value("window/splitter")
        if geo is not None:
            self.restoreGeometry(geo)
        if split is not None:
            self.splitter.restoreState(split)

    def save_geometry(self) -> None:
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/splitter", self.splitter.saveState())

    # ------------------------------------------------------------------------------ layout
    def _build_views(self) -> None:
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel#banner { background:#fff3cd; color:#5c4400; padding:6px;"
                                  " border:1px solid #e0c36c; }")
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

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.banner)
        ll.addWidget(self.record_banner)
        self.filters = FilterBar(self.proxy)
        self.filters.changed.connect(self._schedule_refresh)
        self.case_combo, self.filter_combo = self.filters.case_combo, self.filters.filter_combo
        self.search, self.shown_label = self.filters.search, self.filters.shown_label
        ll.addWidget(self.filters)
        ll.addWidget(self.welcome, 1)
        ll.addWidget(self.browser, 10)

        self.preview = PreviewPanel()
        self.preview.is_locked = lambda cell: self.doc.locked(cell)
        self.preview.reviewRequested.connect(self.review_selected)
        self.preview.nextRequested.connect(self.next_review_open)
        self.summary = SummaryTable()
        self.summary.verticalHeader().setDefaultSectionSize(22)
        self.histogram = Histogram()
        self.flagged_label = QLabel()
        self.flagged_label.setObjectName("flaggedProgress")
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.preview)
        sw = QWidget()
        sl = QVBoxLayout(sw)
        sl.setContentsMargins(4, 0, 4, 4)
        head = QHBoxLayout()
        head.addWidget(QLabel("<b>Summary</b>"))
        head.addStretch(1)
        head.addWidget(self.flagged_label)
        sl.addLayout(head)
        sl.addWidget(self.summary)
        sl.addWidget(self.histogram, 1)
        right.addWidget(sw)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([900, 520])
        self.setCentralWidget(split)
        self.splitter = split
        self.browser.hide()

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(16, 16))
        self.addToolBar(tb)
        tb.addAction(self.acts["open"])
        tb.addAction(self.acts["export"])
        tb.addAction(self.acts["flagged"])
        tb.addSeparator()
        tb.addWidget(QLabel(" Model "))
        tb.addWidget(self.model_combo)
        info = QPushButton("Card…")
        info.setToolTip("Show the model card: version, validation metrics, threshold, provenance")
        info.clicked.connect(self.show_model_info)
        tb.addWidget(info)
        tb.addSeparator()
        self.thr_bar = ThresholdBar()
        self.thr_bar.changed.connect(self.set_threshold)
        self.thr_bar.resetRequested.connect(self.reset_threshold)
        self.thr_spin, self.thr_slider = self.thr_bar.spin, self.thr_bar.slider
        self.thr_reset, self.thr_note = self.thr_bar.reset, self.thr_bar.note
        tb.addWidget(self.thr_bar)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setFixedWidth(230)  # fixed sizes: a progress update never relayouts the status bar
        self.progress.setFormat("%v / %m cells")
        self.progress.hide()
        self.eta_label = QLabel()
        self.eta_label.setFixedWidth(self.eta_label.fontMetrics().horizontalAdvance("9999.9 cells/s · ETA 999:59") + 8)
        self.eta_label.hide()
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the classification (Esc). Cells already classified are kept.")
        self.cancel_btn.clicked.connect(self.cancel_run)
        self.cancel_btn.hide()
        self.keys_label = QLabel()
        self.keys_label.setObjectName("keysLabel")
        self.keys_label.setFixedWidth(self.keys_label.fontMetrics().horizontalAdvance("Label keys off: click a cell") + 12)
        self.keys_label.setToolTip("A, H, X, Space and U label cells only while the gallery, the table or the "
                                   "preview has the keyboard focus")
        for w in (self.keys_label, self.progress, self.eta_label, self.cancel_btn, self.device_label):
            sb.addPermanentWidget(w)
        QApplication.instance().focusChanged.connect(self._focus_moved)
        self._focus_moved(None, QApplication.focusWidget())

    def cell_views(self) -> tuple:
        """The widgets whose focus makes the label keys act (gui/actions.py ``on_cells``)."""
        return (self.browser, self.preview)

    def labels_have_focus(self) -> bool:
        f = QApplication.focusWidget()
        return f is not None and any(v is f or v.isAncestorOf(f) for v in self.cell_views())

    def _focus_moved(self, _old, _new) -> None:
        on = self.labels_have_focus()
        self.keys_label.setText("Label keys on" if on else "Label keys off: click a cell")
        self.keys_label.setStyleSheet("" if on else "color: #b36b00;")

    # ------------------------------------------------------------------------------ models (gui/model_chooser.py)
    @property
    def classifier(self):
        return self.models.classifier

    @property
    def cards(self) -> dict:
        return self.models.cards

    def select_model(self, name: str) -> None:
        self.models.select(name)

    def _model_chosen(self, index: int) -> None:
        self.models.chosen(index)

    def _model_loaded(self, clf) -> None:
        self.runs.stop()  # a run of the previous model (or card version) ends here; its results are kept
        self.runs.use(clf, self.settings.batch_size)
        self.doc.set_model(self.runs.facts)  # the threshold of this model (remembered per model) comes back
        self._show_threshold()
        self._warn_signed_off()
        self._maybe_start_run()

    def _show_banner(self, lines: list) -> None:
        self.banner.setText("<br>".join(lines))
        self.banner.setVisible(bool(lines))

    # ------------------------------------------------------------------------------ threshold
    def _show_threshold(self) -> None:
        f = self.doc.current
        if f is not None:
            self.thr_bar.show_value(self.doc.threshold, f.threshold)

    def set_threshold(self, value: float) -> None:
        if self.doc.current is None:
            return
        self.doc.set_threshold(value)
        self._show_threshold()
        self._warn_signed_off()

    def _warn_signed_off(self) -> None:
        """A signed-off case's counts now rest on another model or threshold than the one it was signed at."""
        moved = self.doc.signed_off_elsewhere()
        if moved:
            c = moved[0]
            self.statusBar().showMessage(
                f"{c.label} was signed off with {model_basis(c.signoff.basis)}; its counts now follow the current model and "
                "threshold (the sign-off keeps what it was signed with).", 15000)

    def reset_threshold(self) -> None:
        f = self.doc.current
        if f is not None:
            self.set_threshold(f.threshold)

    # ------------------------------------------------------------------------------ opening cases
    def open_paths(self, paths: list) -> None:
        """Open folders/files (dialog, drop, recent menu, command line): scan in the background."""
        paths = [str(Path(p).expanduser().absolute()) for p in paths if str(p).strip()]
        if not paths:
            return
        if not self._orphans_checked:  # the restore question comes first (it may bring these cases back)
            self._held_paths.extend(paths)
            return
        if self._open_record_of(paths):
            return
        self.statusBar().showMessage("Looking for images in " + ", ".join(Path(p).name for p in paths) + " …")
        self._scanning.append(frozenset(str(Path(p)) for p in paths))
        self.service.scan(paths)

    # ------------------------------------------------------------------------------ case records
    def _record_places(self) -> list[Path]:
        """The case stores a record is looked for in: the sessions folder and the stores opened lately."""
        from .session import candidates

        return candidates([self.case_files.files.dir], self.settings.recent_stores)

    def find_records(self, folder: str | None = None, sample_id: str | None = None) -> list:
        """The case records (:class:`engine.case.records.Record`) of ``folder`` or of ``sample_id``, newest
        first; the store this window writes is not among them."""
        from .session import find_records

        mine = self.case_files.path
        return [r for r in find_records(self._record_places(), folder=folder, sample_id=sample_id)
                if mine is None or r.path.resolve() != mine.resolve()]

    def _open_record_of(self, paths: list[str]) -> bool:
        """A folder that already has a case record opens that record (its reviews, sample id and sign-off:
        nothing is classified again, no second record is made) instead of a new one; with several records,
        :meth:`choose_record` asks which.  True when a record is being opened (or the choice was cancelled)."""
        for p in paths:
            if p in self.doc.opened or p in self.doc.cases or not Path(p).is_dir():
                continue  # on screen already: scanned again into the record shown
            try:
                records = self.find_records(folder=p)
            except Exception as exc:  # noqa: BLE001 - never stops a folder from opening
                log.warning("looking for the case record of %s failed: %s", p, exc)
                continue
            if not records:
                continue
            chosen = records[0].path if len(records) == 1 else self.choose_record(p, records)
            if chosen is None:
                return True  # cancelled: nothing opened
            if not chosen:
                continue  # "a new record": the folder is classified into the record shown
            rest = [q for q in paths if q != p]
            if not self.open_store(Path(chosen)):
                return True
            self._after_record = rest
            log.info("%s has a case record: opening %s", p, chosen)
            self.statusBar().showMessage(f"{Path(p).name} has a case record: opening {Path(chosen).name} "
                                         "(its reviews and sign-off)", 10000)
            return True
        return False

    def choose_record(self, folder: str, records: list) -> Path | str | None:
        """Several case records hold ``folder``'s case: which one to open (its path), "" for a new record,
        None to cancel.  (Tests replace this method.)"""
        new = "A new record (classify the folder again)"
        items = [r.describe() for r in records] + [new]
        text, ok = QInputDialog.getItem(self, "Open which case record?",
                                        f"{Path(folder).name} has {len(records)} case records. Open:", items, 0, False)
        if not ok:
            return None
        return "" if text == new else records[items.index(text)].path

    def find_record_dialog(self) -> None:
        """File ▸ Find case record: by sample id (or a folder's path)."""
        text, ok = QInputDialog.getText(self, "Find case record", "Sample ID (or the case folder's path):")
        text = text.strip() if ok else ""
        if text:
            self.open_record_of(text)

    def open_record_of(self, text: str) -> bool:
        """Open the record of the sample id or folder ``text`` (asks which when there are several)."""
        found = {r.path: r for r in self.find_records(sample_id=text)}
        if Path(text).expanduser().is_dir():
            found.update({r.path: r for r in self.find_records(folder=str(Path(text).expanduser().absolute()))})
        records = sorted(found.values(), key=lambda r: r.saved, reverse=True)
        if not records:
            self.show_message("No case record", f"No case record of '{text}' was found in the sessions folder "
                              f"({self.case_files.files.dir}) or among the case stores opened lately.",
                              QMessageBox.Icon.Information)
            return False
        chosen = records[0].path if len(records) == 1 else self.choose_record(text, records)
        return bool(chosen) and self.open_store(Path(chosen))

    def _scanned(self, found: ScanResult) -> None:
        items, problems, opened = found.items, found.problems, found.opened
        want = frozenset(p for p, _ in opened)
        mine = next((s for s in self._scanning if want <= s), None) if want else None
        if want and mine is None:  # started for a document no longer shown: never into another record
            log.info("scan of %s finished after its cases were closed: not added", ", ".join(sorted(want)))
            return
        if mine is not None:
            self._scanning.remove(mine)
        for p in problems:
            self.messages.append(("Open", p))
        if items and not self.doc.cells and opened:  # a new record is named after the folder opened first
            named = self.case_files.name_after(Path(opened[0][0]).name)
            if named is not None:
                self.settings.add_recent_store(str(named))
        for path, is_dir in opened:
            self.doc.note_opened(path, is_dir)
            if is_dir:
                self.settings.add_recent(path)
        if problems:
            self.show_message("Some paths could not be opened",
                              "\n".join(problems[:20]) + "\n\nReviews made earlier on these images are kept in the "
                              "case store; they come back when the folder is available and opened again.")
        if not items and not problems:
            self.show_message("No images found", "No supported image files (BMP, PNG, JPEG, TIFF, WebP) were "
                              "found in the folder(s) you opened.", QMessageBox.Icon.Information)
        if items:
            self._adding.append(list(items))
            self.runs.blocked = True
            if len(self._adding) == 1:
                self._add_next_chunk()

    def _add_next_chunk(self) -> None:
        """Cells are added ADD_CHUNK at a time, yielding to the event loop in between, so opening a folder
        of 20,000 cells never freezes the window."""
        if not self._adding:
            return
        items = self._adding[0]
        chunk, rest = items[:ADD_CHUNK], items[ADD_CHUNK:]
        self._added += len(self.doc.add_items(chunk))
        if rest:
            self._adding[0] = rest
        else:
            self._adding.pop(0)
        if self._adding:
            self.statusBar().showMessage(f"Adding cells… {len(self.model.cells)}")
            QTimer.singleShot(0, self._add_next_chunk)
            return
        self.statusBar().showMessage(f"{self._added} new cell image(s) found", 5000)
        self._added = 0
        self.runs.blocked = self._closing
        self._maybe_start_run()

    def _cells_added(self, cells: list) -> None:
        self.model.add_cells(cells)
        if cells and not self.browser.isVisible():
            self.welcome.hide()
            self.browser.show()
            if not self.gallery.currentIndex().isValid():
                self.select_row(0)
            self.gallery.setFocus()
        self._schedule_refresh()

    def _cases_changed(self) -> None:
        self.filters.set_cases(self.doc.cases.values())
        self._schedule_refresh()

    def close_cases(self) -> None:
        if self.doc.unexported and self.doc.reviews:
            if self.ask_close(self.doc.unexported_reviews()) != "discard":
                return
        self.runs.stop()
        self._adding = []
        self.doc.clear()

    def _document_replaced(self) -> None:
        """A whole new document (restore, open case store, close all): rebuild the rows from it."""
        self._scanning, self._adding, self._added = [], [], 0  # what was found for the cases before: not theirs
        self.runs.blocked = self._closing
        self.model.clear()
        self.filters.reset_cases()
        self._cases_changed()
        doc = self.doc
        if doc.cells:
            self.model.add_cells(list(doc.cells))
            self.welcome.hide()
            self.browser.show()
            self.select_row(0)
            self.gallery.setFocus()
        else:
            self.browser.hide()
            self.welcome.show()
        stored = doc.model  # the model the store's results belong to (a headless run's, maybe)
        if stored and stored in self.cards and (self.classifier is None or self.classifier.name != stored):
            self.select_model(stored)  # its results are shown, not classified again with another model
            self.statusBar().showMessage(f"This case store was classified with {stored}: switching to it.", 8000)
        elif self.classifier is not None:
            if stored and stored not in self.cards and self.cards:
                self.show_message("Model of the case store not installed",
                                  f"The results in this case store come from the model '{stored}', which is not "
                                  f"installed here. Its cells are classified again with {self.classifier.display_name};"
                                  " the stored results and the reviews are kept.")
            doc.set_model(self.runs.facts)
        self._show_threshold()
        self._reviews_changed()
        self._schedule_refresh()

    # ------------------------------------------------------------------------------ the case store
    def _orphans_done(self) -> None:
        self._orphans_checked = True
        held, self._held_paths = self._held_paths, []
        if held:
            self.open_paths(held)

    def _ask_restore(self, orphan) -> None:
        if self.ask_restore(orphan.path, orphan.meta):
            self.case_files.restore(orphan.path)

    def _store_adopted(self, adopted) -> None:
        """The store's own folders are scanned again (new images in them are added; a folder that is gone
        now is reported); what was on screen before is never opened into it: one patient per record."""
        path, kept = adopted.path, adopted.kept
        self.settings.add_recent_store(str(path))
        broken = self.case_files.broken
        self.record_banner.setText(f"<b>This case record is broken:</b> {broken}. Its reviews and sign-off cannot "
                                   "be trusted and reports of it are refused (nothing was deleted)." if broken else "")
        self.record_banner.setVisible(bool(broken))
        again = [p for p in self.doc.opened if p] + self._after_record
        self._after_record = []
        if again:
            self.open_paths(list(dict.fromkeys(again)))
        if kept is not None:
            text = (f"The cases shown before are kept in their own case store, {kept.name} (File ▸ Open case "
                    f"store: {kept})")
            self.messages.append(("Case store opened", text))
            self.statusBar().showMessage(text, 30000)
        self._maybe_start_run()

    def open_store_dialog(self) -> None:
        start = str(self.case_files.files.dir if self.case_files.files.dir.is_dir() else Path.home())
        from .session import STORE_FILTER

        path, _ = QFileDialog.getOpenFileName(self, "Open case store", start, f"{STORE_FILTER};;All files (*)")
        if path:
            self.open_store(Path(path))

    def open_store(self, path: Path) -> bool:
        """Show the store at ``path`` instead of the cases on screen (which stay in their own store).
        False when the user kept the cases on screen (or the store is in use)."""
        if self.case_files.path is None and self.doc.cells:
            if not self.confirm_leave_unsaved(len(self.doc.cells)):  # in no store: they would be lost
                return False
        elif self.doc.unexported and self.doc.reviews and \
                self.ask_close(self.doc.unexported_reviews()) != "discard":
            return False
        self.runs.stop()
        return self.case_files.restore(Path(path))

    def _stale_found(self, cells: list, content_changed: bool) -> None:
        self._stale_reviews += sum(1 for c in cells if c.stale is not None)
        if content_changed:
            self._maybe_start_run()
        if self._stale_reviews and not self.runs.running:
            self._report_stale()

    def _report_stale(self) -> None:
        n, self._stale_reviews = self._stale_reviews, 0
        self.show_message("Some reviews were not re-applied",
                          f"{n} reviewed image(s) changed on disk since they were reviewed (different content): "
                          "their reviews were set aside (kept in the case store's history), not applied.")

    def _store_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"Autosave failed: {message}", 15000)
        if not any(t == "Autosave failed" for t, _ in self.messages):  # one dialog, then the status bar
            self.show_message("Autosave failed", f"Your work could not be written to the case store:\n{message}\n\n"
                              "LeukoScan keeps trying with every change. Export the report to keep your work safe.")
        else:
            self.messages.append(("Autosave failed", message))

    # ------------------------------------------------------------------------------ classification
    def _maybe_start_run(self) -> None:
        if self._closing or self.classifier is None:
            return
        if self.doc.model != self.classifier.name or self.models.wanted != self.classifier.name:
            return  # another model is being loaded (a restore, a switch): classify once it is there
        if self.runs.start():
            self.statusBar().showMessage(f"Classifying {self.runs.total} cells with {self.classifier.display_name} "
                                         f"on {self.classifier.device_label}…")

    def classify_remaining(self) -> None:
        if self.runs.running:
            return
        if not self.doc.unclassified():
            self.statusBar().showMessage("Every cell is classified.", 4000)
        self._maybe_start_run()

    def cancel_run(self) -> None:
        if self.runs.running:
            self.runs.cancel()
            self.statusBar().showMessage("Cancelling…")

    def _run_state(self, state: RunState) -> None:
        running = state != RunState.IDLE
        for w in (self.progress, self.cancel_btn, self.eta_label):
            w.setVisible(running)
        self.acts["cancel"].setEnabled(running)
        self.acts["export"].setEnabled(not running)

    def _run_progress(self, p: RunProgress) -> None:
        self.progress.setMaximum(max(1, p.total))
        self.progress.setValue(p.done)
        self.eta_label.setText(p.rate)
        self._refresh_summary()  # the summary keeps pace with the bar

    def _run_finished(self, run: RunFinished) -> None:
        self.last_run = run
        cancelled, n, total, seconds = run.cancelled, run.done, run.total, run.seconds
        log.info("run %s: %d of %d cells in %.1f s with %s", "cancelled" if cancelled else "finished", n, total,
                 seconds, self.classifier.name if self.classifier else "?")
        if cancelled:
            self.statusBar().showMessage(f"Cancelled: {n} of {total} cells classified. Classification ▸ Classify "
                                         "remaining (Ctrl+R) continues.", 15000)
        else:
            rate = n / seconds if seconds > 0 else 0
            self.statusBar().showMessage(f"Classified {n} cells in {seconds:.1f} s ({rate:.1f} cells/s).", 10000)
        if self._stale_reviews:
            self._report_stale()
        self._refresh_summary()
        if not cancelled:
            self._maybe_start_run()

    def _run_failed(self, message: str) -> None:
        self.show_message("Classification stopped", f"The model failed while classifying:\n\n{message}\n\n"
                          "Cells classified so far are kept. Try another model or Classify remaining.")

    # ------------------------------------------------------------------------------ document -> views
    def _cells_changed(self, cells: list) -> None:
        row_of = self.model.row_of
        self.model.rows_changed([r for r in (row_of(c.key) for c in cells) if r is not None])
        cur = self.preview.cell
        if cur is not None and any(c is cur for c in cells):
            self._update_preview()
        self._schedule_refresh()

    def _decisions_changed(self) -> None:
        self.model.all_changed()
        self._update_preview()
        self._schedule_refresh()

    def _reviews_changed(self) -> None:
        self.acts["undo"].setEnabled(self.doc.can_undo)
        self.acts["redo"].setEnabled(self.doc.can_redo)
        self._schedule_refresh()

    def _update_preview(self) -> None:
        self.preview.show_cell(self.current_cell(), self.browser.selection_size())

    def _schedule_refresh(self) -> None:
        if not self._refresh_timer.isActive():
            slow = len(self.model.cells) >= 5000 or self.runs.running  # the summary walks every cell
            self._refresh_timer.setInterval(SUMMARY_REFRESH_MS if not slow else 400)
            self._refresh_timer.start()

    def _refresh_summary(self) -> None:
        doc = self.doc
        self.summary.set_counts(doc.counts(ALL_CASES), {c.name: c for c in doc.cases.values()},
                                {c.name: doc.exclusion_reasons(c.name) for c in doc.cases.values()})
        case = self.proxy.case
        ps = [c.p_all for c in doc.cells_of(case) if c.status == "ok"]
        f = doc.current
        self.histogram.set_data(ps, doc.threshold or 0.5, f.review_margin if f else 0.0,
                                f"P(ALL) — {case or (ALL_CASES if len(doc.cases) > 1 else 'case')} ({len(ps)} cells)")
        self.preview.refresh()
        n, shown = len(self.model.cells), self.proxy.rowCount()
        self.shown_label.setText(f"{shown} of {n} cells shown" if shown != n else f"{n} cells")
        cur = self.current_cell()
        self.flagged_label.setText(self.reviews.flagged_progress(case or (cur.case if cur else None)))
        title = "LeukoScan"
        if doc.cases:
            title += " — " + ", ".join(c.label for c in list(doc.cases.values())[:3])
        if doc.unexported:
            title += " *"
        self.setWindowTitle(title)

    # ------------------------------------------------------------------------------ review helpers
    def start_walk(self) -> None:
        """Review-flagged mode on (as the F key does): walks what is left before sign-off; the gallery takes the
        focus, so the label keys act at once."""
        self.gallery.setFocus()
        act = self.acts["flagged"]
        if not act.isChecked():
            act.setChecked(True)  # toggled -> set_flagged_mode(True)

    def set_flagged_mode(self, on: bool) -> None:
        self.reviews.set_flagged_mode(on)
        self.statusBar().showMessage("Review-flagged mode: each label moves to the next cell left before sign-off "
                                     "(flagged, or an ALL call not confirmed)."
                                     if on else "Review-flagged mode off.", 6000)

    def compare_selected(self) -> None:
        from .compare import CompareDialog

        cells = self.browser.selected_cells()
        try:
            dlg = CompareDialog(cells, self)
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 6000)
            return
        dlg.show()

    def ask_exclusion_reason(self, n: int) -> str:
        """Why ``n`` selected cells do not count (a common reason or the user's own words); "" = cancelled."""
        from .document import EXCLUSION_REASONS

        text, ok = QInputDialog.getItem(self, "Exclude from % blasts",
                                        f"Exclude {n} cell(s) from % blasts, the counts and the interval.\n"
                                        "Reason (kept in the review history; Ctrl+Z undoes it):",
                                        list(EXCLUSION_REASONS), 0, True)
        return text.strip() if ok else ""

    def confirm_bulk_accept(self, n: int, left: list) -> bool:
        """Bulk accept of cells nobody has looked at yet (flagged, or ALL calls): they are listed first."""
        flagged = sum(1 for c in left if c.review_open)
        blasts = sum(1 for c in left if c.blast_unconfirmed and not c.review_open)
        what = " and ".join(t for t in (f"{flagged} flagged for review" if flagged else "",
                                         f"{blasts} ALL call(s) not confirmed" if blasts else "") if t)
        box = QMessageBox(QMessageBox.Icon.Question, "Accept cells nobody has looked at?",
                          f"The selection holds {n} cells, {what} (listed under Show Details).\n\n"
                          "Accept the model's class for all of them?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setDetailedText("\n".join(f"{c.file}  {c.prediction} P(ALL) {c.p_text()}"
                                       + ("  flagged" if c.review_open else "") for c in left))
        box.button(QMessageBox.StandardButton.Yes).setText(f"Accept {n} cells")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return box.exec() == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------------------ export (gui/exports.py)
    @property
    def last_export(self) -> list[str]:
        return self.exports.last

    def can_export(self, interactive: bool = False) -> bool:
        return self.exports.can_export(interactive)

    def export_dialog(self, close_after: bool = False) -> bool:
        return self.exports.csv_dialog(close_after)

    def export_to(self, cells_csv: Path, close_after: bool = False) -> bool:
        return self.exports.csv(cells_csv, close_after)

    def export_pdf_to(self, pdf: Path) -> bool:
        return self.exports.pdf(pdf)

    # ------------------------------------------------------------------------------ closing
    def confirm_close(self) -> bool:
        if self._closing:
            return True
        doc = self.doc
        if doc.unexported and (doc.reviews or doc.thresholds):
            choice = self.ask_close(doc.unexported_reviews())  # only what changed since the last export
            if choice == "cancel":
                return False
            if choice == "export":
                self.runs.stop()  # idle now, so the export is not refused
                self.export_dialog(close_after=True)
                return False  # closes after the export is written (never later by surprise)
        return True

    def shutdown(self) -> None:
        """Stop work, close the case store (kept: it is the case record), release it."""
        self._closing = True
        self.runs.blocked = True
        self.runs.stop()
        try:
            self.save_geometry()
        except Exception:  # settings not writable: not worth an error at exit
            pass
        try:
            kept = self.case_files.close()
            if kept is not None:
                self.settings.add_recent_store(str(kept))
            self.service.flush()
        except Exception:
            pass
        self.service.shutdown()
        self.thumbs.close()
        self.preview.close_loader()

    # ------------------------------------------------------------------------------ small UI slots
    def _fill_recent_records(self) -> None:
        """Case records (stores) opened or closed lately, by sample id (or folder) and file name."""
        from .session import read_record

        records = [r for r in (read_record(p) for p in self.settings.recent_stores if Path(p).is_file()) if r]
        if not records:
            return
        self.recent_menu.addSeparator()
        head = self.recent_menu.addAction("Case records")
        head.setEnabled(False)
        for r in records:
            a = self.recent_menu.addAction(f"{r.label} — {r.path.name}")
            a.setToolTip(r.describe())
            a.triggered.connect(lambda _c=False, p=r.path: self.open_store(p))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_folders
        if not recent and not self.settings.recent_stores:
            a = self.recent_menu.addAction("(none)")
            a.setEnabled(False)
            return
        for f in recent:
            a = self.recent_menu.addAction(f)
            a.triggered.connect(lambda _c=False, f=f: self.open_paths([f]))  # opens the folder's record, if any
        self._fill_recent_records()
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", self.settings.clear_recent)

    def _context_menu(self, view, pos) -> None:
        idx = view.indexAt(pos)
        if idx.isValid() and not view.selectionModel().isSelected(idx):
            view.selectionModel().setCurrentIndex(
                idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        m = QMenu(view)
        for a in (self.acts["all"], self.acts["hem"], self.acts["accept"], self.acts["clear"]):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.acts["next"])
        m.addAction(self.acts["compare"])
        cell = self.current_cell()
        if cell is not None:
            m.addSeparator()
            m.addAction("Copy file path", lambda: self._copy(str(cell.path)))
        m.popup(view.viewport().mapToGlobal(pos))

    def _copy(self, text: str) -> None:
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.clipboard().setText(text)

    def open_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open case folder", self.settings.last_open_dir)
        if d:
            self.settings.last_open_dir = str(Path(d).parent)
            self.open_paths([d])

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open cell images", self.settings.last_open_dir,
            "Images (*.bmp *.png *.jpg *.jpeg *.tif *.tiff *.webp *.BMP *.PNG *.JPG *.TIF *.TIFF);;All files (*)")
        if files:
            self.settings.last_open_dir = str(Path(files[0]).parent)
            self.open_paths(files)

    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        old_device, old_thumb = self.settings.device, self.settings.thumb_size
        if dlg.exec():
            dlg.apply()
            if self.settings.thumb_size != old_thumb:
                self.set_thumb_size(self.settings.thumb_size)
            if self.settings.device != old_device and self.models.wanted:
                self.select_model(self.models.wanted)

    def set_thumb_size(self, size: int) -> None:
        self.thumbs.set_size(size)
        self.browser.set_thumb_size(size)

    def show_model_info(self) -> None:
        card = self.cards.get(self.models.wanted or "")
        if card is None:
            self.show_message("No model", "No model is selected (none installed, or none could be read).")
            return
        ModelInfoDialog(card, self.classifier, self).open()

    def show_about(self) -> None:
        AboutDialog(__version__, list(self.cards.values()), self.models.problems, self).open()

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in shortcut_rows())
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", f"<table>{rows}</table>",
                          QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.open()

    def show_message(self, title: str, text: str, icon=QMessageBox.Icon.Warning) -> QMessageBox:
        """A non-blocking message box (the app keeps working behind it)."""
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.messages.append((title, text))
        log.warning("%s: %s", title, text.replace("\n", " "))
        box.open()
        return box

    def ask_restore(self, path: Path, meta: dict) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Restore session?",
                          f"LeukoScan was not closed normally. Restore the session saved at "
                          f"{meta.get('saved') or meta.get('started') or '?'}?\n\n"
                          f"Cells: {meta.get('cells', '?')}   Reviewed cells: {meta.get('reviews', '?')}\n"
                          "Results and reviews come back without classifying again.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.button(QMessageBox.StandardButton.Yes).setText("Restore")
        box.button(QMessageBox.StandardButton.No).setText("Not now")
        box.setInformativeText(f"'Not now' keeps it ({path.name}); it is offered again at the next start and "
                               "can be opened with File ▸ Open case store.")
        return box.exec() == QMessageBox.StandardButton.Yes

    def ask_close(self, n_reviews: int) -> str:
        """'export' | 'discard' | 'cancel'."""
        since = f" (last export {self.doc.exported_at[:16].replace('T', ' ')} UTC)" if self.doc.exported_at else ""
        what = (f"{n_reviews} review(s) made or changed since the last export{since} have not been exported"
                if n_reviews else f"A sample id, sign-off or threshold changed since the last export{since}")
        box = QMessageBox(QMessageBox.Icon.Warning, "Unexported reviews",
                          f"{what}.\n\nThey stay in the case store either way.", parent=self)
        exp = box.addButton("Export…", QMessageBox.ButtonRole.AcceptRole)
        dis = box.addButton("Close without exporting", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(exp)
        box.exec()
        if box.clickedButton() is exp:
            return "export"
        if box.clickedButton() is dis:
            return "discard"
        return "cancel"

    def confirm_leave_unsaved(self, n_cells: int) -> bool:
        """Opening a case store while the cases on screen are in none (autosave off): True = close them."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Cases not saved",
                          f"The {n_cells} cell(s) on screen are not saved in any case store (autosave is off).\n\n"
                          "Opening a case store closes them; export your report first to keep them.", parent=self)
        go = box.addButton("Close them and open", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is go

    def ask_reviewer(self) -> str:
        name, ok = QInputDialog.getText(self, "Reviewer", "Your name or staff ID (written into the report):")
        return name.strip() if ok else ""

    # ------------------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, e) -> None:
        if e.mimeData().hasUrls() and any(u.isLocalFile() for u in e.mimeData().urls()):
            e.acceptProposedAction()

    def dragMoveEvent(self, e) -> None:
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            e.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.open_paths(paths))

    def closeEvent(self, e) -> None:
        if not self.confirm_close():
            e.ignore()
            return
        self.shutdown()
        e.accept()
