"""Which case store this window writes, and the stores of apps that did not close normally.

Each window writes one case store (SQLite, :mod:`engine.case.store`): a new session gets
``<user data>/sessions/session-<id>.db``; File ▸ Open case store (or a restore) adopts an existing one.
A ``QLockFile`` beside the store is held while the window has it, so two windows never write one store,
and a session store whose lock is free belongs to an app that did not close normally: it is offered
for restore.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from PySide6.QtCore import QLockFile

STORE_SUFFIX = ".db"


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


class SessionFiles:
    """The sessions folder and the lock of the store this window writes."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "sessions"
        self._lock: QLockFile | None = None
        self.path: Path | None = None

    def new_path(self, session_id: str) -> Path:
        return self.dir / f"session-{session_id}{STORE_SUFFIX}"

    def claim(self, path: Path) -> Path:
        """Lock ``path`` (a store, new or existing) for this window; the previous one is released."""
        path = Path(path)
        if path.parent == self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
        lock = QLockFile(str(lock_path(path)))
        lock.setStaleLockTime(0)
        if not lock.tryLock(100):
            raise OSError(self._lock_problem(lock, path))
        self.release()
        self._lock, self.path = lock, path
        return path

    def _lock_problem(self, lock: QLockFile, path: Path) -> str:
        """Why ``lock`` could not be taken, in words: only a lock held by a live process means another
        window; a folder that cannot be written to (read-only, permissions, disk full) says so."""
        if lock.error() == QLockFile.LockError.LockFailedError:
            return f"the case store {path.name} is in use by another LeukoScan window"
        where = "the sessions folder" if path.parent == self.dir else "the folder"
        try:  # the operating system's own reason
            with tempfile.TemporaryFile(dir=path.parent):
                pass
            why = "permission denied" if lock.error() == QLockFile.LockError.PermissionError else "unknown error"
        except OSError as exc:
            why = exc.strerror or str(exc)
        return f"cannot write to {where} {path.parent}: {why}"

    def release(self, delete: bool = False) -> None:
        """Unlock; ``delete``: also remove the store (a session closed normally with nothing worth keeping)."""
        if self._lock is not None:
            if delete and self.path is not None:
                for p in (self.path, self.path.with_name(self.path.name + "-wal"),
                          self.path.with_name(self.path.name + "-shm")):
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass
            self._lock.unlock()
            self._lock = None
            self.path = None

    def orphans(self) -> list[Path]:
        """Session stores of apps that did not close normally (their lock is free), newest first."""
        if not self.dir.is_dir():
            return []
        found = []
        for p in self.dir.glob(f"session-*{STORE_SUFFIX}"):
            if self.path is not None and p == self.path:
                continue
            lock = QLockFile(str(lock_path(p)))
            lock.setStaleLockTime(0)
            if not lock.tryLock(0):
                continue  # another running LeukoScan owns it
            lock.unlock()
            try:
                found.append((p.stat().st_mtime, p))
            except OSError:
                continue
        return [p for _, p in sorted(found, reverse=True)]
