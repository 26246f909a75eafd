"""The case store this window writes: claimed at start, adopted on restore or File ▸ Open case store,
closed (and kept) when the window closes.

Every change of the case document reaches the store by itself (the store listens to the document);
this class only decides *which* store that is, and says so when one cannot be used:

- at start, a new session store in the user data folder (none, with a message, when the folder is not
  writable: the app works, without autosave);
- a session store of an app that did not close normally is offered for restore;
- a store that cannot be read is reported in a dialog and the log and moved aside (``.corrupt``);
- one patient per record: a store opened shows its own cases only; the cases on screen before stay in the
  store they were written to (``adopted`` names it), never in the one opened.
- a case store is named after its case: the new session store takes the name of the folder opened first
  (``<folder>.leukoscan``), and is renamed after the case's sample id when the window closes (both under the
  store locks of :mod:`engine.case.lock`); stores outside the sessions folder keep their name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from .service import FilesChanged, Orphan, StoreFailed, StoreOpened
from .session import SessionFiles, free_path, new_session_id, store_name

log = logging.getLogger("leukoscan.gui")


@dataclass(frozen=True)
class Adopted:
    """``adopted``: the store now shown (restored or opened), and the store the cases shown before are
    kept in (None: there were none, or they were in no store)."""

    path: Path
    kept: Path | None


class CaseFiles(QObject):
    message = Signal(str, str)  # title, text (shown as a dialog)
    status = Signal(str, int)  # status bar text, ms
    adopted = Signal(Adopted)
    askRestore = Signal(Orphan)  # the window asks the user, then calls restore(orphan.path)
    orphansChecked = Signal()

    def __init__(self, service, bridge, data_dir: Path, parent=None) -> None:
        super().__init__(parent)
        self.service = service
        self.bridge = bridge
        self.files = SessionFiles(data_dir)
        self.path: Path | None = None  # the store written now
        self.unavailable = ""  # why there is no store (autosave is off)
        self.broken = ""  # why the record shown is broken (engine.case.record_check.verify), "" when intact
        self._wanted: Path | None = None  # a store being opened
        self._fresh: Path | None = None  # the new session store: deleted on close only if it never held a cell
        self._fresh_used = False
        bridge.cellsAdded.connect(self._note_used)
        self._checking = None  # the check of the shown document's images (gui.tasks.Task)
        bridge.replaced.connect(self._stop_checking)

    def _note_used(self, _cells) -> None:
        if self.path is not None and self.path == self._fresh:
            self._fresh_used = True

    # --- start ------------------------------------------------------------------------------------
    def start(self, check_orphans: bool) -> None:
        """Claim a new session store (at start, and after File ▸ Close all cases)."""
        self._fresh_used = False
        self.broken = ""
        path = self.files.new_path(new_session_id())
        try:
            self.path = self._fresh = self.files.claim(path)
        except OSError as exc:  # read-only home etc.: the app works, without autosave
            self.path = None
            self.unavailable = str(exc)
            self.message.emit(
                "Autosave unavailable",
                f"Your work cannot be autosaved ({exc}).\n\nLeukoScan works, but export your report "
                "before closing: a crash would lose the reviews.",
            )
        else:
            self._wanted = path
            self.service.open_store(path, load=False, on_opened=self._opened, on_failed=self._failed)
        if check_orphans:
            self.service.find_orphans(self.files, on_result=self._orphans)
        else:
            self.orphansChecked.emit()

    def _orphans(self, found: list[Orphan]) -> None:
        for orphan in found:
            path, meta = orphan.path, orphan.meta
            if meta.get("problem"):
                self._failed(StoreFailed(path, meta["problem"], None), offer_move=True)
                continue
            if not any(int(meta.get(k, "0") or 0) for k in ("cells", "reviews", "events")):
                self.service.remove_file(path)  # never held a cell nor an audit-trail row: nothing to offer
                continue
            self.askRestore.emit(orphan)
            break
        self.orphansChecked.emit()

    # --- adopt a store ----------------------------------------------------------------------------
    def restore(self, path: Path) -> bool:
        """Open the store at ``path`` and show its document (results and reviews, no re-classification)."""
        path = Path(path)
        if self.path is not None and path == self.path:
            return True
        try:
            self.files.claim(path)  # keeps the current lock until this one is taken
        except OSError as exc:
            self.message.emit("Case store in use", str(exc))
            return False
        self._wanted = path
        self.status.emit(f"Opening {path.name} …", 0)
        self.service.open_store(path, load=True, on_opened=self._opened, on_failed=self._failed)
        return True

    def _opened(self, opened: StoreOpened) -> None:
        path, store, doc = opened.path, opened.store, opened.doc
        if path != self._wanted:
            self.service.close_store(store)
            return
        self._wanted = None
        if doc is None:  # our new session store
            self.bridge.attach_store(store)
            return
        # the cases on screen stay in the store they were written to (never re-opened into this one: one
        # patient per record); ``kept`` names that store for the window to say so
        old, had_cells = self.path, bool(self.bridge.doc.cells)
        if self.bridge.store is not None:
            self.bridge.doc.note_closed()  # the store left behind is a closed session, not a crash to restore
        previous = self.bridge.adopt(doc, store)
        if previous is not None:
            self.service.close_store(previous)
        self.path = path
        kept = old if had_cells and old is not None and old != path else None
        if old is not None and old == self._fresh and old != path and not self._fresh_used:
            self.service.remove_file(old)  # a new session that never held a cell; otherwise it is kept
            kept = None
        self._fresh = None
        problem = getattr(store, "problem", None)
        self.broken = str(problem) if problem is not None else ""
        if self.broken:
            self.message.emit(
                "Case record is broken",
                f"{path}:\n{self.broken}\n\nIts history was changed outside "
                "LeukoScan, so its reviews and sign-off cannot be trusted. Nothing was deleted; "
                f'leukoscan-cli verify "{path}" says where. Reports of it are refused.',
            )
        self.adopted.emit(Adopted(path, kept))
        self._checking = self.service.check_files(store, doc, self._files_changed)
        log.info("case store %s opened: %d cells, %d reviews", path, len(doc.cells), len(doc.reviews))

    def _failed(self, failed: StoreFailed, offer_move: bool = False) -> None:
        path, reason, moved = failed.path, failed.reason, failed.moved
        if offer_move and moved is None:
            # asked (restore?): moved aside if damaged
            self.service.open_store(path, load=True, move_damaged=True, on_opened=self._opened, on_failed=self._failed)
            return
        if self.path is not None and path == self.path and self._fresh == path:
            self.path = None
            self.unavailable = reason
            self.message.emit(
                "Autosave unavailable",
                f"The session store {path} cannot be written ({reason}).\n\n"
                "LeukoScan works, but export your report before closing.",
            )
            return
        if path == self._wanted:
            self._wanted = None
            self.files.claim(self.path) if self.path is not None else self.files.release()
        where = f"\n\nIt was moved aside to {moved} (nothing was deleted)." if moved else ""
        self.message.emit("Case store could not be read", f"{path}:\n{reason}{where}")

    def _stop_checking(self) -> None:
        """Another document is shown (or the cases were closed): what the check finds is not about it."""
        if self._checking is not None:
            self._checking.cancel()
            self._checking = None

    def _files_changed(self, found: FilesChanged) -> None:
        from .document import ImageChange

        self._checking = None
        doc, by_root = found.doc, dict[str, list]()
        for c in found.cells:
            by_root.setdefault(str(c.root), []).append(c)
        cells = []
        for root, cs in by_root.items():
            n = sum(1 for c in doc.cells_of(doc.cases[root]) if c.results) if root in doc.cases else 0
            if ImageChange(root, n, n - len(cs), [c.key for c in cs]).another_sample:
                continue  # every image of the case replaced: another sample, refused by the check of its folder's scan
            cells += cs
        changed = doc.content_changed(cells)
        if changed:
            self.status.emit(
                f"{len(changed)} image(s) changed on disk since they were classified: classified "
                "again; their reviews were set aside",
                15000,
            )

    # --- naming -----------------------------------------------------------------------------------
    def name_after(self, label: str) -> Path | None:
        """The new session store, while it has held nothing, is made again as ``<label>.leukoscan`` (the
        folder opened first) in the sessions folder: a record is found by its name.  Returns the new path
        (None: kept as it was: not a new empty session, or the new file cannot be made)."""
        old, store = self.path, self.bridge.store
        if (
            old is None
            or old != self._fresh
            or self._fresh_used
            or self.bridge.doc.cells
            or store is None
            or self._wanted is not None
            or old.parent != self.files.dir
            or not label
        ):
            return None
        new = free_path(self.files.dir, label)
        try:
            self.files.claim(new)  # the new lock is taken before the old one goes
        except OSError:
            return None
        try:
            fresh = self.service.create_store(new)
        except Exception as exc:
            log.warning("cannot create %s (%s): the session keeps %s", new, exc, old.name)
            self.files.claim(old)
            self.service.remove_file(new)
            return None
        self.bridge.detach_store(close=True)  # empty: closes at once
        self.service.remove_file(old)
        self.bridge.attach_store(fresh)  # the document (model, threshold) is written into it as it stands
        self.path = self._fresh = new
        log.info("session store %s named %s", old.name, new.name)
        return new

    def _label(self) -> str:
        case = next(iter(self.bridge.doc.cases.values()), None)
        return case.sample_id if case is not None else ""

    # --- close ------------------------------------------------------------------------------------
    def close(self) -> Path | None:
        """Flush and close the store (kept: it is the case record), release its lock.  A new session with
        no cells is removed.  A store of the sessions folder whose case has a sample id is renamed after
        it (``<sample id>.leukoscan``).  Returns where the record is now (None: no record kept)."""
        store = self.bridge.store
        empty = not self._fresh_used  # a new session that never held a cell (its audit trail is empty too)
        label = ""
        if store is not None:
            try:
                label = self._label()
                self.bridge.doc.note_closed()
            except Exception:
                pass
            self.bridge.detach_store(close=True)
        path, delete = self.path, empty and self.path is not None and self.path == self._fresh
        self.files.release(delete=delete)
        if path is None or delete:
            return None
        if store is not None and label and not path.stem.startswith(store_name(label)):
            renamed = self.files.name_after(path, label)
            if renamed != path:
                log.info("case store %s renamed %s", path.name, renamed.name)
                self.path = path = renamed
        return path
