"""The main window: lays out the widgets and wires the components together; it holds no state of its own.

The cases live in the document (:class:`DocumentBridge`), runs in :class:`RunController` (started and shown by
:class:`RunPanel`), opening in :class:`CaseOpener`, reviews in :class:`ReviewActions`, the store in
:class:`CaseFiles`, exports in :class:`ExportFlow`, sign-off in :class:`CaseActions`, every question and
message box in :class:`Prompts`.  Each gets what it needs in its constructor; none reaches back here."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QPushButton, QSplitter, QToolBar, QVBoxLayout, QWidget

from . import __version__
from .actions import build_actions, build_menus, cell_menu, fill_toolbar
from .browser import CellBrowser
from .case_actions import CaseActions
from .case_files import CaseFiles
from .cells import CellModel
from .context import ActionContext, Key
from .dialogs import AboutDialog, ModelInfoDialog, SettingsDialog
from .document import DocumentBridge, model_basis
from .exports import ExportFlow
from .filter_bar import FilterBar
from .icon import app_icon
from .keys_indicator import LabelKeysIndicator
from .model_chooser import ModelChooser
from .notices import Notices
from .opening import CaseOpener
from .prompts import CloseChoice, Prompts
from .review_actions import ReviewActions
from .run_controller import RunController
from .run_panel import RunPanel
from .service import EngineService
from .settings import Settings, user_data_dir
from .side_panel import SidePanel
from .tasks import TaskRunner
from .threshold_bar import ThresholdBar
from .thumbs import ImageLoader
from .views import DocumentViews

log = logging.getLogger("leukoscan.gui")


class MainWindow(QMainWindow):
    recent_menu: QMenu  # (built with the menus, whose File > Open recent fills it)

    def __init__(
        self,
        service: EngineService | None = None,
        settings: Settings | None = None,
        check_orphans: bool = True,
        parent=None,
        prompts: type[Prompts] = Prompts,
    ) -> None:
        """``prompts``: the class that asks every question and shows every message (a test gives a recording one)."""
        super().__init__(parent)
        self.settings = settings or Settings()
        self.service = service or EngineService()
        self.service.setParent(self)
        self.setWindowTitle("LeukoScan")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self._autosave_warned = False  # one dialog for a failing case store, then the status bar
        self._ask_before_close = True  # False: closed by a signal (nobody there to answer "export first?")

        s = self.settings
        self.prompts = prompts(self)
        self.bridge = DocumentBridge(parent=self)
        self.images = TaskRunner(1, "leukoscan-images", self)  # one pool decodes every image the window shows
        self.thumbs = ImageLoader(size=s.thumb_size, runner=self.images, parent=self)
        self.cell_model = CellModel(self.thumbs, self)
        self.browser = CellBrowser(self.cell_model, self.thumbs, s.thumb_size)
        self.model_chooser = ModelChooser(self.service, s, self)  # the one owner of the model that classifies
        self.runs = RunController(self.service, self.bridge, self.model_chooser, s, self)
        self.filters = FilterBar(self.browser.proxy)
        p = self.prompts
        self.reviews = ReviewActions(self.browser, self.bridge, s, p, self.filters, self)
        self.case_files = CaseFiles(self.service, self.bridge, user_data_dir(), self)
        self.run_panel = RunPanel(self.runs, self.bridge, self.model_chooser, p, self)
        self.opener = CaseOpener(
            self.service, self.bridge, self.case_files, self.runs, s, p, ready=not check_orphans, parent=self
        )
        self.case_actions = CaseActions(self.bridge, self.browser, self.reviews, p, self.start_walk, self)
        self.exports = ExportFlow(
            self.service, self.bridge, self.runs, self.case_files, s, p, self.case_actions.current_case, self
        )

        self._build_views()
        self.views = DocumentViews(
            self.bridge,
            self.cell_model,
            self.browser,
            self.filters,
            self.side,
            self.reviews,
            self.runs,
            self.notices.welcome,
            self,
        )
        self.context = ActionContext(self)  # what the actions' enablement reads (gui/actions.py COMMANDS)
        self.acts = build_actions(self, self.context)  # every command's callable bound now: a misspelt one fails here
        self.recent_menu = build_menus(self, self.acts, lambda: self.opener.fill_recent(self.recent_menu))
        self._build_toolbar()
        self._build_statusbar()
        self.settings.restore_layout(self, self.splitter)
        self._connect()
        self.model_chooser.reload()
        self.case_files.start(check_orphans)

    @property
    def doc(self):
        """The case document shown."""
        return self.bridge.doc

    # ------------------------------------------------------------------------------ wiring
    def _connect(self) -> None:
        b, show = self.bridge, self.statusBar().showMessage
        talkers = (self.model_chooser, self.exports, self.case_actions, self.reviews, self.case_files)
        for component in (*talkers, self.run_panel, self.opener):  # their status lines go to the status bar
            component.status.connect(show)
        self.model_chooser.loaded.connect(self._model_loaded)
        self.model_chooser.bannerChanged.connect(self.notices.show_models)
        self.model_chooser.failed.connect(self.prompts.show_message)
        self.case_files.message.connect(self.prompts.show_message)
        self.case_files.adopted.connect(lambda _a: self.notices.show_broken(self.case_files.broken))
        self.case_actions.changed.connect(self._reviews_changed)  # a sign-off locks undo/redo of its cells
        self.exports.written.connect(lambda _p: self.views.schedule_refresh())
        self.exports.closeRequested.connect(self.close)
        self.opener.added.connect(self.run_panel.maybe_start)
        self.run_panel.runningChanged.connect(self._sync_context)
        self.model_chooser.loaded.connect(self._sync_context)
        self.browser.selectionChanged.connect(self._sync_context)
        self.filters.changed.connect(self._sync_context)
        b.casesChanged.connect(self._sync_context)
        self.run_panel.summaryDue.connect(self.views.refresh_summary)
        self.views.titleChanged.connect(self.setWindowTitle)
        b.replaced.connect(self._document_replaced)
        b.storeFailed.connect(self._store_failed)
        b.reviewsChanged.connect(lambda _step: self._reviews_changed())
        # the document announces a step before it is on its undo/redo stack: the actions' state is read after
        self.reviews.changed.connect(self._reviews_changed)
        self.browser.contextMenuRequested.connect(
            lambda view, pos: cell_menu(view, pos, self.acts, self.browser.current_cell)
        )

    # ------------------------------------------------------------------------------ layout
    def _build_views(self) -> None:
        self.notices = Notices()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.notices.banner)
        ll.addWidget(self.notices.record_banner)
        ll.addWidget(self.filters)
        ll.addWidget(self.notices.welcome, 1)
        ll.addWidget(self.browser, 10)

        self.side = SidePanel(self.model_chooser.current, self.bridge.locked, images=self.images)
        self.preview = self.side.preview
        self.preview.reviewRequested.connect(self.reviews.apply)
        self.preview.nextRequested.connect(self.reviews.next_open)
        self.preview.shown.connect(
            lambda cell: self.doc.mark_shown([cell], "walk" if self.reviews.flagged_mode else "preview")
        )
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.side)
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
        fill_toolbar(tb, self.acts)
        tb.addSeparator()
        tb.addWidget(QLabel(" Model "))
        tb.addWidget(self.model_chooser.combo)
        info = QPushButton("Card…")
        info.setToolTip("Show the model card: version, validation metrics, threshold, provenance")
        info.clicked.connect(self.show_model_info)
        tb.addWidget(info)
        tb.addSeparator()
        self.thr_bar = ThresholdBar()
        self.thr_bar.changed.connect(self.set_threshold)
        self.thr_bar.resetRequested.connect(self.reset_threshold)
        tb.addWidget(self.thr_bar)

    def _build_statusbar(self) -> None:
        self.keys_label = LabelKeysIndicator(self.cell_views, self)
        for w in (self.keys_label, *self.run_panel.widgets(), self.model_chooser.device_label):
            self.statusBar().addPermanentWidget(w)

    def cell_views(self) -> tuple:
        """The widgets whose focus makes the label keys act (gui/actions.py ``on_cells``)."""
        return (self.browser, self.preview)

    # ------------------------------------------------------------------------------ model and threshold
    def _model_loaded(self, clf) -> None:
        self.runs.stop()  # a run of the previous model (or card version) ends here; its results are kept
        self.doc.set_model(self.bridge.facts_of(clf))  # the threshold of this model (remembered per model) comes back
        self._show_threshold()
        self._warn_signed_off()
        self.run_panel.maybe_start()

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
                "threshold (the sign-off keeps what it was signed with).",
                15000,
            )

    def reset_threshold(self) -> None:
        f = self.doc.current
        if f is not None:
            self.set_threshold(f.threshold)

    # ------------------------------------------------------------------------------ document -> views
    def _document_replaced(self) -> None:
        """A whole new document (restore, open case store, close all; the rows follow in DocumentViews): the
        model its results came from is chosen, if installed."""
        doc, chooser = self.doc, self.model_chooser
        stored, clf, cards = doc.model_name, chooser.classifier, chooser.cards
        if stored and stored in cards and (clf is None or clf.name != stored):
            chooser.select(stored)  # its results are shown, not classified again with another model
            self.statusBar().showMessage(f"This case store was classified with {stored}: switching to it.", 8000)
        elif clf is not None:
            if stored and stored not in cards and cards:
                self.prompts.show_message(
                    "Model of the case store not installed",
                    f"The results in this case store come from the model "
                    f"'{stored}', which is not installed here. Its cells are classified again with "
                    f"{clf.display_name}; the stored results and the reviews are kept.",
                )
            doc.set_model(self.bridge.facts_of(clf))
        self._show_threshold()
        self._reviews_changed()

    def _store_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"Autosave failed: {message}", 15000)
        if self._autosave_warned:
            self.prompts.note("Autosave failed", message)
            return
        self._autosave_warned = True
        self.prompts.show_message(
            "Autosave failed",
            f"Your work could not be written to the case store:\n{message}"
            "\n\nLeukoScan keeps trying with every change. Export the report to keep your work "
            "safe.",
        )

    def _sync_context(self, *_args) -> None:
        """The facts the actions' enablement reads, as they are now (the actions follow: gui/actions.py)."""
        case = self.case_actions.current_case()
        self.context.update(
            {
                Key.RUNNING: self.runs.running,
                Key.CAN_UNDO: self.doc.can_undo,
                Key.CAN_REDO: self.doc.can_redo,
                Key.HAS_MODEL: self.model_chooser.classifier is not None,
                Key.CASE_LOCKED: case is not None and case.signoff is not None,
            }
        )

    def _reviews_changed(self) -> None:
        self._sync_context()
        self.views.schedule_refresh()

    # ------------------------------------------------------------------------------ review helpers
    def start_walk(self) -> None:
        """Review-flagged mode on (as the F key does): walks what is left before sign-off; the gallery takes the
        focus, so the label keys act at once."""
        self.browser.gallery.setFocus()
        act = self.acts["flagged"]
        if not act.isChecked():
            act.setChecked(True)  # toggled -> set_flagged_mode(True)
        else:  # already walking: go on to a cell that is left (the filter may have hidden them)
            cur = self.browser.current_cell()
            if cur is None or not cur.left_before_signoff:
                self.reviews.next_open()

    def set_flagged_mode(self, on: bool) -> None:
        self.reviews.set_flagged_mode(on)
        self.views.update_preview()  # the cell the walk starts on is seen in the walk
        self.statusBar().showMessage(
            "Review-flagged mode: each label moves to the next cell left before sign-off "
            "(flagged, or an ALL call not confirmed)."
            if on
            else "Review-flagged mode off.",
            6000,
        )

    def compare_selected(self) -> None:
        from .compare import CompareDialog

        try:
            dlg = CompareDialog(self.browser.selected_cells(), self, images=self.images)
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 6000)
            return
        dlg.show()

    # ------------------------------------------------------------------------------ closing
    def close_unasked(self) -> None:
        """Close without asking to export first (a stop signal: nobody is there to answer; every change is in the
        case store already)."""
        self._ask_before_close = False
        self.close()

    def confirm_close(self) -> bool:
        if not self._ask_before_close or self.runs.closed:
            return True
        doc = self.doc
        if doc.unexported and (doc.reviews or doc.thresholds):
            # only what changed since the last export
            choice = self.prompts.ask_close(doc.unexported_reviews(), doc.exported_at)
            if choice == CloseChoice.CANCEL:
                return False
            if choice == CloseChoice.EXPORT:
                self.runs.stop()  # idle now, so the export is not refused
                self.exports.csv_dialog(close_after=True)
                return False  # closes after the export is written (never later by surprise)
        return True

    def shutdown(self) -> None:
        """Stop work, close the case store (kept: it is the case record), release it."""
        self.runs.close()
        try:
            self.settings.save_layout(self, self.splitter)
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
        self.images.shutdown(wait=True, timeout=2.0)

    # ------------------------------------------------------------------------------ small UI slots
    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        old_device, old_thumb = (self.settings.device, self.settings.precision), self.settings.thumb_size
        if dlg.exec():
            dlg.apply()
            if self.settings.thumb_size != old_thumb:
                self.set_thumb_size(self.settings.thumb_size)
            if (self.settings.device, self.settings.precision) != old_device and self.model_chooser.wanted:
                self.model_chooser.select(self.model_chooser.wanted)

    def set_thumb_size(self, size: int) -> None:
        self.thumbs.set_size(size)
        self.browser.set_thumb_size(size)

    def show_model_info(self) -> None:
        chooser = self.model_chooser
        card = chooser.cards.get(chooser.wanted or "")
        if card is None:
            self.prompts.show_message("No model", "No model is selected (none installed, or none could be read).")
            return
        ModelInfoDialog(card, list(chooser.cards.values()), chooser.classifier, self).open()

    def show_about(self) -> None:
        AboutDialog(__version__, list(self.model_chooser.cards.values()), self.model_chooser.problems, self).open()

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
            QTimer.singleShot(0, lambda: self.opener.open_paths(paths))

    def closeEvent(self, e) -> None:
        if not self.confirm_close():
            e.ignore()
            return
        self.shutdown()
        e.accept()
