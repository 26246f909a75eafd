"""Opening cases: folders and files (dialog, drop, recent menu, command line), case records (a folder's own
record, File ▸ Find case record, File ▸ Open case store) and the restore offer at start.

Folders are scanned by a service task; cells are added ``ADD_CHUNK`` at a time, yielding to the event loop
in between, so opening 20,000 cells never freezes the window.  A case is its images: what is scanned of a folder the
document already holds a case of is first compared with that case by sha256 on a worker
(:mod:`engine.case.images`): a folder holding another sample's images is never pooled into the case (it is said, and
may be opened as a new case), and a signed-off case whose images changed or went is reopened with the reason logged
(an image swapped for one of the same size and mtime included).  A scan belongs to the document it was started
for: when the document is replaced, its scans are cancelled (:mod:`gui.tasks`), so what they find never
lands in another patient's record.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from .prompts import CloseChoice
from .service import ScanResult

log = logging.getLogger("leukoscan.gui")
ADD_CHUNK = 2000  # rows added per event-loop turn when a folder is opened


class RunGate(Protocol):
    """What opening needs of the runs (gui.run_controller.RunController): none starts while cells are being added
    or checked, and the run of a document being replaced stops."""

    def hold(self) -> None: ...

    def release(self) -> None: ...

    def stop(self, timeout: float = 2.0) -> None: ...


class CaseOpener(QObject):
    status = Signal(str, int)  # status bar text, ms (0: until replaced)
    scanned = Signal(ScanResult)  # a scan of this document was handled (its cells are being added)
    added = Signal()  # every cell found is in the document: a run may start

    def __init__(
        self, service, bridge, case_files, runs: RunGate, settings, prompts, ready: bool = True, parent=None
    ) -> None:
        """``ready`` False: paths asked for are held until the restore question was answered (``start``)."""
        super().__init__(parent)
        self.service, self.bridge, self.case_files = service, bridge, case_files
        self.runs, self.settings, self.prompts = runs, settings, prompts
        self.ready = ready
        self._held: list[str] = []  # command-line paths, opened once the restore question is answered
        self._after_record: list[str] = []  # paths opened with a folder whose record is being opened
        self._scans: list = []  # the scan tasks of the document shown
        self._adding: list[list] = []  # scanned items not yet added (see _add_next_chunk)
        self._added = 0
        self._new_record: set[str] = set()  # folders to open as a new case (their record holds another sample)
        bridge.replaced.connect(self._forget)
        case_files.askRestore.connect(self._ask_restore)
        case_files.adopted.connect(self._adopted)
        case_files.orphansChecked.connect(self._orphans_checked)

    @property
    def doc(self):
        return self.bridge.doc

    @property
    def busy(self) -> bool:
        """Scanned cells are still being added."""
        return bool(self._adding)

    # --- folders and files ----------------------------------------------------------------------------
    def open_paths(self, paths: list) -> None:
        """Open folders/files: a folder with a case record opens that record, the rest is scanned."""
        paths = [str(Path(p).expanduser().absolute()) for p in paths if str(p).strip()]
        if not paths:
            return
        if not self.ready:  # the restore question comes first (it may bring these cases back)
            self._held.extend(paths)
            return
        if self._open_store_among(paths):
            return
        paths = [p for p in paths if not self._is_store_file(p)]
        if not paths:
            return
        if self._open_record_of(paths):
            return
        self.status.emit("Looking for images in " + ", ".join(Path(p).name for p in paths) + " …", 0)
        self._scans.append(self.service.scan(paths, on_result=self._scanned))

    @staticmethod
    def _is_store_file(path: str) -> bool:
        from .session import STORE_SUFFIXES

        return Path(path).suffix.lower() in STORE_SUFFIXES and Path(path).is_file()

    def _open_store_among(self, paths: list[str]) -> bool:
        """A case store among ``paths`` (``leukoscan CASE.leukoscan``: the file manager's "Open with", a drop, the
        command line) is opened like File ▸ Open case store, unless this window shows it already; the other paths
        open into it once it is shown.  One store per window: further ones are named in a message.  True when a
        store is being opened (or the user kept the cases on screen)."""
        stores = [p for p in paths if self._is_store_file(p)]
        if not stores:
            return False
        if len(stores) > 1:
            self.prompts.show_message(
                "One case store per window",
                "Only " + Path(stores[0]).name + " was opened; "
                "open " + ", ".join(Path(p).name for p in stores[1:]) + " with File ▸ Open "
                "case store in another LeukoScan window.",
                QMessageBox.Icon.Information,
            )
        mine = self.case_files.path
        if mine is not None and Path(stores[0]).resolve() == Path(mine).resolve():
            return False  # shown already: nothing to open
        rest = [p for p in paths if p not in stores]
        if self.open_store(Path(stores[0])):
            self._after_record = rest
        return True

    def open_dialog(self, parent) -> None:
        d = QFileDialog.getExistingDirectory(parent, "Open case folder", self.settings.last_open_dir)
        if d:
            self.settings.last_open_dir = str(Path(d).parent)
            self.open_paths([d])

    def open_files_dialog(self, parent) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            parent,
            "Open cell images",
            self.settings.last_open_dir,
            "Images (*.bmp *.png *.jpg *.jpeg *.tif *.tiff *.webp *.BMP *.PNG *.JPG *.TIF *.TIFF);;All files (*)",
        )
        if files:
            self.settings.last_open_dir = str(Path(files[0]).parent)
            self.open_paths(files)

    def _scanned(self, found: ScanResult) -> None:
        self._scans = [t for t in self._scans if not t.delivered]
        items, problems, opened = found.items, found.problems, found.opened
        for p in problems:
            self.prompts.note("Open", p)
        if items and not self.doc.cells and opened:  # a new record is named after the folder opened first
            named = self.case_files.name_after(Path(opened[0][0]).name)
            if named is not None:
                self.settings.add_recent_store(str(named))
        for path, is_dir in opened:
            self.doc.note_opened(path, is_dir)
            if is_dir:
                self.settings.add_recent(path)
        if problems:
            self.prompts.show_message(
                "Some paths could not be opened",
                "\n".join(problems[:20]) + "\n\nReviews made earlier on these "
                "images are kept in the case store; they come back when the folder is available and opened again.",
            )
        if not items and not problems:
            self.prompts.show_message(
                "No images found",
                "No supported image files (BMP, PNG, JPEG, TIFF, WebP) were found in the folder(s) you opened.",
                QMessageBox.Icon.Information,
            )
        if items:
            self._add_checked(list(items))
        self.scanned.emit(found)

    def _add_checked(self, items: list) -> None:
        """Add scanned items once the folders the document holds a case of were compared with it by sha256."""
        from .document import case_images

        stored = {r: cells for r, cells in case_images(self.doc, items).items() if any(cells.values())}
        if not stored:
            self._add(items)
            return
        self.runs.hold()  # no run starts before the check said what these images are
        doc = self.doc
        self.status.emit("Checking the images of " + ", ".join(Path(r).name for r in stored) + " …", 0)
        self._scans.append(  # cancelled with the document (_forget): its answer is about no other
            self.service.check_images(
                stored, items, on_result=lambda changes: self._images_checked(doc, items, set(stored), changes)
            )
        )

    def _images_checked(self, doc, items: list, roots: set, changes) -> None:
        self._scans = [t for t in self._scans if not t.delivered]
        if doc is not self.doc:
            return
        if changes is None:  # could not be checked: nothing of those folders is added (never pooled unchecked)
            self.prompts.show_message(
                "Images not checked",
                "The images of " + ", ".join(roots) + " could not be compared with their case, so none was "
                "added to it. The case record is shown as it was; open the folder again to retry.",
            )
            changes = {r: None for r in roots}
        other = {r: ch for r, ch in changes.items() if ch is None or ch.another_sample}
        for root, ch in changes.items():
            if root in other:
                continue
            cells = [c for c in map(doc.cell, ch.changed) if c is not None]
            if cells:  # classified again; a signed-off case is reopened with the reason logged
                doc.content_changed(cells)
            case = doc.cases.get(root)
            if ch.gone and case is not None:
                names = ", ".join(Path(k).name for k in ch.gone[:3]) + (
                    f" and {len(ch.gone) - 3} more" if len(ch.gone) > 3 else ""
                )
                if case.signoff is not None:
                    doc.reopen(
                        case, "LeukoScan (automatic)", f"image(s) gone from the folder after the sign-off: {names}"
                    )
                self.prompts.note(
                    "Open",
                    f"{len(ch.gone)} image(s) of {case.label} are no longer in {root} ({names}); they stay in the case record",
                )
        keep = [it for it in items if str(it.root) not in other]
        if keep:
            self._add(keep)
        elif not self._adding:
            self.runs.release()
            self.status.emit("", 0)
        for root, ch in other.items():
            if ch is not None:
                self._other_sample(root, ch)

    def _other_sample(self, root: str, ch) -> None:
        case = self.doc.cases.get(root)
        label = case.label if case is not None else Path(root).name
        text = (
            f"The images in {root} are not those of the case {label} kept for that folder ({ch.describe()}).\n\n"
            "A case is its images, so they were not added to it: the case record is shown as it was, nothing was "
            "classified or changed.\n\nOpen the folder as a new case? The record shown is closed and kept as it is "
            "(File ▸ Find case record finds it)."
        )
        if self.prompts.ask_other_sample(text):
            self.open_as_new_case(root)
        else:
            self.status.emit(f"{Path(root).name}: another sample's images, not added to {label}", 15000)

    def open_as_new_case(self, folder: str) -> bool:
        """Close the record shown (kept whole) and open ``folder`` as a new case in a new record, without opening
        the folder's record.  False when the close was cancelled (unexported reviews: the user kept the cases)."""
        self.close_cases()
        if self.doc.cases:
            return False
        self._new_record.add(folder)
        self.open_paths([folder])
        return True

    def _add(self, items: list) -> None:
        self._adding.append(items)
        self.runs.hold()
        if len(self._adding) == 1:
            self._add_next_chunk()

    def _add_next_chunk(self) -> None:
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
            self.status.emit(f"Adding cells… {len(self.doc.cells)}", 0)
            QTimer.singleShot(0, self._add_next_chunk)
            return
        self.status.emit(f"{self._added} new cell image(s) found", 5000)
        self._added = 0
        self.runs.release()
        self.added.emit()

    def _forget(self) -> None:
        """A new document: what was being found or added for the cases before is not its own."""
        for t in self._scans:
            t.cancel()
        self._scans, self._adding, self._added = [], [], 0
        self.runs.release()

    def close_cases(self) -> None:
        """File ▸ Close all cases: the case record is closed and kept whole (cells, results, reviews, sign-off) and
        found again by opening its folder or sample id; the window goes on with a new, empty record.  Nothing is
        cleared while a store listens, so closing never erases a record."""
        if self.doc.unexported and self.doc.reviews:
            if self.prompts.ask_close(self.doc.unexported_reviews(), self.doc.exported_at) != CloseChoice.DISCARD:
                return
        self.runs.stop()
        had_store = self.case_files.path is not None
        kept = self.case_files.close()  # flushed, closed, named after its sample id, its lock released
        if kept is not None:
            self.settings.add_recent_store(str(kept))
        self.doc.clear()  # no store listens now: only the view is emptied (-> bridge.replaced -> _forget)
        if had_store:
            self.case_files.start(check_orphans=False)  # a new record for what is opened next
        if kept is not None:
            self.status.emit(f"Cases closed. Their record is kept in {kept} (File ▸ Find case record).", 10000)

    def fill_recent(self, menu) -> None:
        """File ▸ Open recent, as it is shown: the folders opened lately (a folder opens its record, if it has
        one), then the case records (stores) opened or closed lately, by sample id (or folder) and file name."""
        from .session import read_record

        menu.clear()
        recent = self.settings.recent_folders
        if not recent and not self.settings.recent_stores:
            menu.addAction("(none)").setEnabled(False)
            return
        for f in recent:
            menu.addAction(f).triggered.connect(lambda _c=False, f=f: self.open_paths([f]))
        records = [r for r in (read_record(p) for p in self.settings.recent_stores if Path(p).is_file()) if r]
        if records:
            menu.addSeparator()
            menu.addAction("Case records").setEnabled(False)
            for r in records:
                a = menu.addAction(f"{r.label} — {r.path.name}")
                a.setToolTip(r.describe())
                a.triggered.connect(lambda _c=False, p=r.path: self.open_store(p))
        menu.addSeparator()
        menu.addAction("Clear list", self.settings.clear_recent)

    # --- case records ---------------------------------------------------------------------------------
    def find_records(self, folder: str | None = None, sample_id: str | None = None) -> list:
        """The case records (:class:`engine.case.records.Record`) of ``folder`` or of ``sample_id``, newest
        first, in the sessions folder and the stores opened lately; the store written now is not among them."""
        from .session import candidates, find_records

        places = candidates([self.case_files.files.dir], self.settings.recent_stores)
        mine = self.case_files.path
        return [
            r
            for r in find_records(places, folder=folder, sample_id=sample_id)
            if mine is None or r.path.resolve() != mine.resolve()
        ]

    def _open_record_of(self, paths: list[str]) -> bool:
        """A folder that already has a case record opens that record (its reviews, sample id and sign-off:
        nothing is classified again, no second record is made) instead of a new one; with several records,
        the user chooses.  True when a record is being opened (or the choice was cancelled)."""
        for p in paths:
            if p in self._new_record:  # its record holds another sample: a new case was asked for
                self._new_record.discard(p)
                continue
            if p in self.doc.opened or p in self.doc.cases or not Path(p).is_dir():
                continue  # on screen already: scanned again into the record shown
            try:
                records = self.find_records(folder=p)
            except Exception as exc:
                log.warning("looking for the case record of %s failed: %s", p, exc)
                continue
            if not records:
                continue
            chosen = records[0].path if len(records) == 1 else self.prompts.choose_record(p, records)
            if chosen is None:
                return True  # cancelled: nothing opened
            if not chosen:
                continue  # "a new record": the folder is classified into the record shown
            rest = [q for q in paths if q != p]
            if not self.open_store(Path(chosen)):
                return True
            self._after_record = rest
            log.info("%s has a case record: opening %s", p, chosen)
            self.status.emit(
                f"{Path(p).name} has a case record: opening {Path(chosen).name} (its reviews and sign-off)", 10000
            )
            return True
        return False

    def find_record_dialog(self, parent) -> None:
        """File ▸ Find case record: by sample id (or a folder's path)."""
        text, ok = QInputDialog.getText(parent, "Find case record", "Sample ID (or the case folder's path):")
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
            self.prompts.show_message(
                "No case record",
                f"No case record of '{text}' was found in the sessions "
                f"folder ({self.case_files.files.dir}) or among the case stores opened lately.",
                QMessageBox.Icon.Information,
            )
            return False
        chosen = records[0].path if len(records) == 1 else self.prompts.choose_record(text, records)
        return bool(chosen) and self.open_store(Path(chosen))

    # --- case stores ----------------------------------------------------------------------------------
    def open_store_dialog(self, parent) -> None:
        from .session import STORE_FILTER

        start = str(self.case_files.files.dir if self.case_files.files.dir.is_dir() else Path.home())
        path, _ = QFileDialog.getOpenFileName(parent, "Open case store", start, f"{STORE_FILTER};;All files (*)")
        if path:
            self.open_store(Path(path))

    def open_store(self, path: Path) -> bool:
        """Show the store at ``path`` instead of the cases on screen (which stay in their own store).
        False when the user kept the cases on screen (or the store is in use)."""
        doc = self.doc
        if self.case_files.path is None and doc.cells:
            if not self.prompts.confirm_leave_unsaved(len(doc.cells)):  # in no store: they would be lost
                return False
        elif (
            doc.unexported
            and doc.reviews
            and self.prompts.ask_close(doc.unexported_reviews(), doc.exported_at) != CloseChoice.DISCARD
        ):
            return False
        self.runs.stop()
        return self.case_files.restore(Path(path))

    def _ask_restore(self, orphan) -> None:
        if self.prompts.ask_restore(orphan.path, orphan.meta):
            self.case_files.restore(orphan.path)

    def _orphans_checked(self) -> None:
        self.ready = True
        held, self._held = self._held, []
        if held:
            self.open_paths(held)

    def _adopted(self, adopted) -> None:
        """The store's own folders are scanned again (new images in them are added; a folder that is gone
        now is reported); what was on screen before is never opened into it: one patient per record."""
        self.settings.add_recent_store(str(adopted.path))
        again = [p for p in self.doc.opened if p] + self._after_record
        self._after_record = []
        if again:
            self.open_paths(list(dict.fromkeys(again)))
        if adopted.kept is not None:
            text = (
                f"The cases shown before are kept in their own case store, {adopted.kept.name} (File ▸ Open "
                f"case store: {adopted.kept})"
            )
            self.prompts.note("Case store opened", text)
            self.status.emit(text, 30000)
        self.added.emit()
