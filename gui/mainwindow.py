"""The main window: layout, menus, drag and drop.  Case work (runs, reviews, autosave, export) lives
in :class:`gui.casework.CaseWork`, which this window mixes in."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QListView, QMainWindow, QMenu, QMessageBox, QProgressBar, QPushButton, QSlider, QSplitter, QTableView,
    QTabWidget, QToolBar, QVBoxLayout, QWidget,
)

from . import __version__
from .casework import CaseWork
from .cells import FILTERS, CellFilterProxy, CellModel
from .delegate import TileDelegate
from .dialogs import AboutDialog, ModelInfoDialog, SettingsDialog
from .icon import app_icon
from .preview import PreviewPanel
from .service import EngineService
from .settings import Settings
from .summary import Histogram, SummaryTable
from .thumbs import ThumbnailLoader

log = logging.getLogger("leukoscan.gui")


class MainWindow(CaseWork, QMainWindow):
    def __init__(self, service: EngineService | None = None, settings: Settings | None = None,
                 check_orphans: bool = True, parent=None) -> None:
        QMainWindow.__init__(self, parent)
        self.settings = settings or Settings()
        self.service = service or EngineService()
        self.service.setParent(self)
        self.setWindowTitle("LeukoScan")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1400, 900)

        self.thumbs = ThumbnailLoader(size=self.settings.thumb_size, parent=self)
        self.model = CellModel(self.thumbs, self)
        self.proxy = CellFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self._build_views()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_statusbar()
        self._restore_geometry()
        self.init_casework(check_orphans)

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
        self.gallery = QListView()
        self.gallery.setObjectName("gallery")
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setLayoutMode(QListView.LayoutMode.Batched)
        self.gallery.setBatchSize(500)
        self.gallery.setSpacing(3)
        self.gallery.setWrapping(True)
        self.gallery.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.gallery.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.delegate = TileDelegate(self.proxy, self.thumbs, self.settings.thumb_size, self.gallery)
        self.gallery.setItemDelegate(self.delegate)
        self.gallery.setModel(self.proxy)
        self.gallery.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.gallery.customContextMenuRequested.connect(lambda pos: self._context_menu(self.gallery, pos))
        self.gallery.setStyleSheet("QListView#gallery { background: #16181d; }")

        self.table = QTableView()
        self.table.setObjectName("table")
        self.table.setModel(self.proxy)
        self.table.setSelectionModel(self.gallery.selectionModel())  # one selection for both views
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        for col, width in enumerate((200, 140, 70, 60, 64, 96, 76, 56, 100)):  # File ... Reviewer; Error stretches
            self.table.setColumnWidth(col, width)
        self.table.setAlternatingRowColors(True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(lambda pos: self._context_menu(self.table, pos))

        self.tabs = QTabWidget()
        self.tabs.addTab(self.gallery, "Gallery")
        self.tabs.addTab(self.table, "Table")

        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel#banner { background:#fff3cd; color:#5c4400; padding:6px;"
                                  " border:1px solid #e0c36c; }")
        self.banner.hide()
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
        ll.addWidget(self._build_filterbar())
        ll.addWidget(self.welcome, 1)
        ll.addWidget(self.tabs, 10)

        self.preview = PreviewPanel()
        self.preview.reviewRequested.connect(self.review_selected)
        self.preview.nextRequested.connect(self.next_needs_review)
        self.summary = SummaryTable()
        self.summary.verticalHeader().setDefaultSectionSize(22)
        self.histogram = Histogram()
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.preview)
        sw = QWidget()
        sl = QVBoxLayout(sw)
        sl.setContentsMargins(4, 0, 4, 4)
        title = QLabel("<b>Summary</b>")
        sl.addWidget(title)
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
        self.tabs.hide()

    def _build_filterbar(self) -> QWidget:
        bar = QWidget()
        h = QHBoxLayout(bar)
        h.setContentsMargins(2, 2, 2, 2)
        h.addWidget(QLabel("Case"))
        self.case_combo = QComboBox()
        self.case_combo.setObjectName("caseCombo")
        self.case_combo.setMinimumContentsLength(16)
        self.case_combo.addItem("All cases", "")
        self.case_combo.currentIndexChanged.connect(self._case_chosen)
        h.addWidget(self.case_combo)
        h.addSpacing(8)
        h.addWidget(QLabel("Show"))
        self.filter_combo = QComboBox()
        self.filter_combo.setObjectName("filterCombo")
        for key, (label, _fn) in FILTERS.items():
            self.filter_combo.addItem(label, key)
        self.filter_combo.currentIndexChanged.connect(
            lambda _i: (self.proxy.set_kind(self.filter_combo.currentData()), self._schedule_refresh()))
        h.addWidget(self.filter_combo)
        h.addSpacing(8)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter file names…")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(220)
        self.search.textChanged.connect(lambda t: (self.proxy.set_text(t), self._schedule_refresh()))
        h.addWidget(self.search)
        h.addSpacing(8)
        h.addWidget(QLabel("P(ALL)"))
        self.p_min, self.p_max = QDoubleSpinBox(), QDoubleSpinBox()
        for sb, v, tip in ((self.p_min, 0.0, "Show cells with P(ALL) at least this"),
                           (self.p_max, 1.0, "Show cells with P(ALL) at most this")):
            sb.setRange(0.0, 1.0)
            sb.setDecimals(2)
            sb.setSingleStep(0.05)
            sb.setValue(v)
            sb.setToolTip(tip)
            sb.setKeyboardTracking(False)
            sb.valueChanged.connect(lambda _v: (self.proxy.set_p_range(self.p_min.value(), self.p_max.value()),
                                                self._schedule_refresh()))
        h.addWidget(self.p_min)
        h.addWidget(QLabel("–"))
        h.addWidget(self.p_max)
        h.addStretch(1)
        self.shown_label = QLabel()
        self.shown_label.setObjectName("shownLabel")
        h.addWidget(self.shown_label)
        return bar

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(lambda _checked=False: slot())
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        A = self._action
        self.act_open = A("&Open folder…", self.open_dialog, QKeySequence.StandardKey.Open,
                          "Open a case folder (all images in it and its sub-folders)")
        self.act_open_files = A("Open &images…", self.open_files_dialog, "Ctrl+Shift+O", "Open single image files")
        self.act_export = A("&Export report…", self.export_dialog, "Ctrl+E",
                            "Write the per-cell CSV (with review columns) and the summary CSV")
        self.act_close_cases = A("&Close all cases", self.close_cases, "Ctrl+W", "Remove all opened cases")
        self.act_settings = A("&Settings…", self.settings_dialog, QKeySequence.StandardKey.Preferences)
        self.act_quit = A("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_all = A("Label &ALL", lambda: self.review_selected("ALL"), "A", "Label the selected cells ALL")
        self.act_hem = A("Label &HEM", lambda: self.review_selected("HEM"), "H", "Label the selected cells HEM")
        self.act_accept = A("A&ccept model class", lambda: self.review_selected("accept"), "Space",
                            "Accept the model's class for the selected cells (bulk accept: select many)")
        self.act_clear = A("Clear &review", lambda: self.review_selected("clear"), "U",
                           "Remove the review of the selected cells")
        self.act_next = A("&Next needs-review cell", self.next_needs_review, "N",
                          "Select the next cell that needs review")
        self.act_prev = A("&Previous needs-review cell", lambda: self.next_needs_review(backwards=True), "Shift+N")
        self.act_cancel = A("&Cancel classification", self.cancel_run, "Esc", "Stop the running classification")
        self.act_resume = A("Classify &remaining", self.classify_remaining, "Ctrl+R",
                            "Classify the cells a cancelled run did not reach")
        self.act_model_info = A("Model &card…", self.show_model_info, "Ctrl+I",
                                "Version, validation metrics, threshold and provenance of the model")
        self.act_reload_models = A("Re&load models", self.reload_models, None, "Re-read the model folders")
        self.act_about = A("&About LeukoScan", self.show_about)
        self.act_cancel.setEnabled(False)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        m.addAction(self.act_open_files)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        m.addSeparator()
        m.addAction(self.act_export)
        m.addAction(self.act_close_cases)
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Review")
        for a in (self.act_all, self.act_hem, self.act_accept, self.act_clear):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_next)
        m.addAction(self.act_prev)
        m = mb.addMenu("&Classification")
        m.addAction(self.act_cancel)
        m.addAction(self.act_resume)
        m.addSeparator()
        m.addAction(self.act_model_info)
        m.addAction(self.act_reload_models)
        m = mb.addMenu("&Help")
        m.addAction(self.act_about)

    def _build_toolbar(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(16, 16))
        self.addToolBar(tb)
        tb.addAction(self.act_open)
        tb.addAction(self.act_export)
        tb.addSeparator()
        tb.addWidget(QLabel(" Model "))
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("modelCombo")
        self.model_combo.setMinimumContentsLength(26)
        self.model_combo.setToolTip("The model that classifies the cells (from the installed model cards)")
        self.model_combo.activated.connect(self._model_chosen)
        tb.addWidget(self.model_combo)
        info = QPushButton("Card…")
        info.setToolTip("Show the model card: version, validation metrics, threshold, provenance")
        info.clicked.connect(self.show_model_info)
        tb.addWidget(info)
        tb.addSeparator()
        tb.addWidget(QLabel(" Threshold "))
        self.thr_spin = QDoubleSpinBox()
        self.thr_spin.setObjectName("thresholdSpin")
        self.thr_spin.setRange(0.01, 0.99)
        self.thr_spin.setDecimals(3)  # card thresholds are calibrated values such as 0.437
        self.thr_spin.setSingleStep(0.01)
        self.thr_spin.setKeyboardTracking(False)
        self.thr_spin.setValue(0.5)  # placeholder until a model is loaded (the widgets are disabled)
        self.thr_spin.setToolTip("Cells with P(ALL) at or above the threshold are ALL. Starts at the model card's "
                                 "threshold; a changed threshold is written into the report.")
        self.thr_slider = QSlider(Qt.Orientation.Horizontal)
        self.thr_slider.setRange(1, 99)
        self.thr_slider.setFixedWidth(120)
        self.thr_slider.setValue(50)
        self.thr_slider.setToolTip(self.thr_spin.toolTip())
        self.thr_reset = QPushButton("Reset")
        self.thr_reset.setToolTip("Back to the model card's threshold")
        self.thr_note = QLabel()
        self.thr_spin.valueChanged.connect(lambda v: self.set_threshold(round(v, 3)))
        self.thr_slider.valueChanged.connect(lambda v: self.set_threshold(v / 100.0))
        self.thr_reset.clicked.connect(self.reset_threshold)
        for w in (self.thr_spin, self.thr_slider, self.thr_reset, self.thr_note):
            w.setEnabled(False) if w is not self.thr_note else None
            tb.addWidget(w)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setFixedWidth(230)  # fixed sizes: a progress update never relayouts the status bar
        self.progress.setFormat("%v / %m cells")
        self.progress.hide()
        self.eta_label = QLabel()
        self.eta_label.setFixedWidth(self.eta_label.fontMetrics().horizontalAdvance("9999.9 cells/s · ETA 999:59") + 8)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Stop the classification (Esc). Cells already classified are kept.")
        self.cancel_btn.clicked.connect(self.cancel_run)
        self.cancel_btn.hide()
        self.device_label = QLabel("Model: none")
        self.device_label.setObjectName("deviceLabel")
        self.device_label.setTextFormat(Qt.TextFormat.RichText)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.eta_label)
        sb.addPermanentWidget(self.cancel_btn)
        sb.addPermanentWidget(self.device_label)

    # ------------------------------------------------------------------------------ small UI slots
    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_folders
        if not recent:
            a = self.recent_menu.addAction("(none)")
            a.setEnabled(False)
            return
        for f in recent:
            a = self.recent_menu.addAction(f)
            a.triggered.connect(lambda _c=False, f=f: self.open_paths([f]))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", self.settings.clear_recent)

    def _context_menu(self, view, pos) -> None:
        idx = view.indexAt(pos)
        if idx.isValid() and not view.selectionModel().isSelected(idx):
            view.selectionModel().setCurrentIndex(
                idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        m = QMenu(view)
        for a in (self.act_all, self.act_hem, self.act_accept, self.act_clear):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_next)
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

    def export_dialog(self) -> None:
        if not self.can_export(interactive=True):
            return
        pending = sum(1 for c in self.model.cells if c.result is None)
        if pending:
            box = QMessageBox(QMessageBox.Icon.Question, "Export an incomplete report?",
                              f"{pending} cell(s) were not classified (the run was cancelled), so they will not be "
                              "in the report.\n\nClassification ▸ Classify remaining (Ctrl+R) classifies them first.",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
            box.button(QMessageBox.StandardButton.Yes).setText("Export without them")
            if box.exec() != QMessageBox.StandardButton.Yes:
                self._close_after_export = False
                return
        start = self.settings.last_export_dir or str(Path.home())
        name = self.default_report_name()
        path, _ = QFileDialog.getSaveFileName(self, "Export report", str(Path(start) / name), "CSV (*.csv)")
        if not path:
            self._close_after_export = False  # the user cancelled: do not close later by surprise
        if path:
            if not path.lower().endswith(".csv"):
                path += ".csv"
            self.export_to(Path(path))

    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        old_device, old_thumb = self.settings.device, self.settings.thumb_size
        if dlg.exec():
            dlg.apply()
            if self.settings.thumb_size != old_thumb:
                self.set_thumb_size(self.settings.thumb_size)
            if self.settings.device != old_device and self.wanted_model:
                self.select_model(self.wanted_model)

    def set_thumb_size(self, size: int) -> None:
        self.thumbs.set_size(size)
        self.delegate.thumb_size = size
        self.gallery.doItemsLayout()
        self.gallery.viewport().update()

    def show_model_info(self) -> None:
        card = self.cards.get(self.wanted_model or "")
        if card is None:
            self.show_message("No model", "No model is selected (none installed, or none could be read).")
            return
        ModelInfoDialog(card, self.classifier, self).open()

    def show_about(self) -> None:
        AboutDialog(__version__, list(self.cards.values()), self.model_problems, self).open()

    def show_message(self, title: str, text: str, icon=QMessageBox.Icon.Warning) -> QMessageBox:
        """A non-blocking message box (the app keeps working behind it)."""
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.messages.append((title, text))
        log.warning("%s: %s", title, text.replace("\n", " "))
        box.open()
        return box

    def ask_restore(self, path: Path, state) -> bool:
        n = len(state.reviews)
        box = QMessageBox(QMessageBox.Icon.Question, "Restore session?",
                          f"LeukoScan was not closed normally. Restore the session autosaved at "
                          f"{state.saved or state.started}?\n\n"
                          f"Folders: {len(state.folders)}   Reviewed cells: {n}\n"
                          + "\n".join(state.folders[:5]),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.button(QMessageBox.StandardButton.Yes).setText("Restore")
        box.button(QMessageBox.StandardButton.No).setText("Not now")
        box.setInformativeText("'Not now' keeps the autosave; it is offered again at the next start.")
        return box.exec() == QMessageBox.StandardButton.Yes

    def ask_close(self, n_reviews: int) -> str:
        """'export' | 'discard' | 'cancel'."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Unexported reviews",
                          f"{n_reviews} reviewed cell(s) or a threshold change have not been exported.",
                          parent=self)
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

    def ask_reviewer(self) -> str:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, "Reviewer", "Your name or staff ID (written into the report):")
        return name.strip() if ok else ""

    def update_banner(self, lines: list[str]) -> None:
        self.banner.setText("<br>".join(lines))
        self.banner.setVisible(bool(lines))

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
