"""Which case store this window writes, and the stores of apps that did not close normally.

Each window writes one case store (SQLite, :mod:`engine.case.store`): a new session gets
``<user data>/sessions/session-<id>.leukoscan``, renamed after its sample id (or folder) when it is closed
(:meth:`SessionFiles.name_after`); File ▸ Open case store, a restore, or opening a folder that already has a
record (:func:`engine.case.records.find_records`) adopts an existing one.
The store's lock (:mod:`engine.case.lock`, the one protocol of every writer: the CLI's ``classify --store``
and ``export`` take it too) is held while the window has it, so two writers never write one store, and a
session store whose lock is free belongs to an app that did not close normally: it is offered for restore.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from engine.case.lock import StoreLock, StoreLocked, is_locked
from engine.case.lock import lock_path as _lock_path
from engine.case.records import (  # noqa: F401  (re-exported: gui reaches engine only through gui.session/service/document)
    STORE_FILTER,
    STORE_SUFFIX,
    STORE_SUFFIXES,
    candidates,
    find_records,
    free_path,
    read_record,
    rename_store,
    store_name,
)
from engine.domain.store_files import store_paths


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


def lock_path(store: Path) -> Path:
    return _lock_path(store)


class SessionFiles:
    """The sessions folder and the lock of the store this window writes."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "sessions"
        self._lock: StoreLock | None = None
        self.path: Path | None = None

    def new_path(self, session_id: str) -> Path:
        return self.dir / f"session-{session_id}{STORE_SUFFIX}"

    def claim(self, path: Path) -> Path:
        """Lock ``path`` (a store, new or existing) for this window; the previous one is released."""
        path = Path(path)
        if path.parent == self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
        lock = StoreLock(path, "LeukoScan")
        try:
            lock.acquire()
        except StoreLocked as exc:  # name the holder: another window, or a CLI run
            h = exc.holder
            who = "another LeukoScan window" if h is None or h.program == "LeukoScan" else h.program
            where = f" (host {h.host}, pid {h.pid}" + (f", since {h.since})" if h.since else ")") if h else ""
            raise OSError(f"the case store {path.name} is in use by {who}{where}") from None
        except OSError as exc:
            raise OSError(self._lock_problem(exc, path)) from None
        self.release()
        self._lock, self.path = lock, path
        return path

    def _lock_problem(self, error: OSError, path: Path) -> str:
        """Why the lock file could not be made, in words: a folder that cannot be written to (read-only,
        permissions, disk full) says so.  (A lock held by another writer is :class:`StoreLocked`.)"""
        where = "the sessions folder" if path.parent == self.dir else "the folder"
        try:  # the operating system's own reason
            with tempfile.TemporaryFile(dir=path.parent):
                pass
            why = error.strerror or str(error)
        except OSError as exc:
            why = exc.strerror or str(exc)
        return f"cannot write to {where} {path.parent}: {why}"

    def release(self, delete: bool = False) -> None:
        """Unlock; ``delete``: also remove the store (a session closed normally with nothing worth keeping)."""
        if self._lock is not None:
            if delete and self.path is not None:
                for p in store_paths(self.path):
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass
            self._lock.release()
            self._lock = None
            self.path = None

    def name_after(self, path: Path, label: str) -> Path:
        """Rename the closed, unlocked store ``path`` of the sessions folder after ``label`` (its sample id or
        folder): ``<label>.leukoscan``.  Stores elsewhere keep their name; a store in use, or a rename
        that fails, keeps it too.  Returns the path it has now."""
        path = Path(path)
        if path.parent != self.dir or not label or (self.path is not None and path == self.path):
            return path
        target = free_path(self.dir, label, current=path)
        try:
            return rename_store(path, target)
        except (OSError, StoreLocked):
            return path

    def orphans(self) -> list[Path]:
        """Session stores of apps that did not close normally (their lock is free), newest first."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in (p for s in STORE_SUFFIXES for p in self.dir.glob(f"*{s}")):
            if self.path is not None and p == self.path:
                continue
            if is_locked(p):
                continue  # another running LeukoScan (or a CLI run) owns it
            try:
                found.append((p.stat().st_mtime, p))
            except OSError:
                continue
        return [p for _, p in sorted(found, reverse=True)]
