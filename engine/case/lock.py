"""The one lock protocol for every writer of a case store (the app, ``leukoscan-cli classify --store``,
``leukoscan-cli export``'s bookkeeping).

``CASE.db.lock`` beside the store names its holder, one value a line (the layout ``QLockFile`` uses, so
a lock left by an older LeukoScan is understood)::

    <pid>
    <program>          e.g. "LeukoScan" or "leukoscan-cli classify"
    <host name>
    <since>            ISO 8601 UTC

and the holder keeps an exclusive ``flock`` on it (``msvcrt.locking`` on Windows) for as long as it
writes.  The lock belongs to the real file: a symlink's target (``<target>.lock``), and a store with hard links
(several names, each of which would have its own ``.lock``) is refused.  The operating system drops that lock when the process ends, however it ends, so:

* lock busy: another writer is alive -> :class:`StoreLocked` naming it (host, pid, since);
* lock free but the file names a process of this host that no longer runs -> a stale lock: taken over,
  with a log line (``logging`` warning, also in :attr:`StoreLock.took_over`);
* lock free and the file names another host, or a live process here: it cannot be told from this
  machine whether that writer is gone -> :class:`StoreLocked` (delete the ``.lock`` file by hand once
  sure that writer stopped).

Readers (``report``, ``verify``, ``export --no-bookkeeping``) take no lock: SQLite keeps each read
consistent; a writer is only refused another writer.  :meth:`StoreLock.release` removes the file.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from ..domain.store_files import LOCK, WAL_FILES
from .document import utc_now

log = logging.getLogger(__name__)

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only (mypy reads this test, not os.name)
    import msvcrt

    _FAR = 1 << 30  # lock one byte far past the content, so the content stays readable

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _FAR, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)

    def _unlock(fd: int) -> None:
        os.lseek(fd, _FAR, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:  # a file system without flock: fall back to the holder's words alone
            log.debug("flock unavailable on this file system: %s", exc)
            return True

    def _unlock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass


def real_store(store: str | Path) -> Path:
    """The file a store name stands for (symlinks resolved): every name of one file has one lock."""
    return Path(os.path.realpath(os.path.expanduser(str(store))))


def lock_path(store: str | Path) -> Path:
    """The lock file of a case store: ``<store>.lock`` beside the real file (a symlink's target), so a symlink
    cannot get past the lock of the file it points to."""
    store = real_store(store)
    return store.with_name(store.name + LOCK)


def _host() -> str:
    return socket.gethostname() or "localhost"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True


@dataclass(frozen=True)
class Holder:
    """Who a lock file names."""

    pid: int
    program: str
    host: str
    since: str

    def describe(self) -> str:
        since = f", since {self.since}" if self.since else ""
        return f"{self.program or 'a LeukoScan program'} (host {self.host or '?'}, pid {self.pid}{since})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        lines = text.splitlines()
        if not lines:
            return None
        try:
            pid = int(lines[0].strip())
        except ValueError:
            return None

        def get(i: int) -> str:
            return lines[i].strip() if len(lines) > i else ""

        since = get(3)
        if since and not since[:4].isdigit():  # QLockFile's 4th line is a machine id, not a time
            since = ""
        return cls(pid, get(1), get(2), since)


class StoreLocked(Exception):
    """Another writer holds the case store; ``str()`` names it.  ``holder``: who (None if unknown)."""

    def __init__(self, message: str, holder: Holder | None = None):
        super().__init__(message)
        self.holder = holder


def read_holder(store: str | Path) -> Holder | None:
    """Who the lock file of ``store`` names (None: no lock file, or one that names nobody)."""
    try:
        return Holder.parse(lock_path(store).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def is_locked(store: str | Path) -> bool:
    """True while a live writer holds ``store`` (a stale lock file is not a lock).  Never takes it."""
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: say busy, never write over it
    try:
        if not _try_lock(fd):
            return True
        _unlock(fd)
        holder = read_holder(store)
        return holder is not None and _blocks(holder)
    finally:
        os.close(fd)


def _blocks(holder: Holder) -> bool:
    """A lock file whose OS lock is free still blocks when its holder may be alive: another host (cannot
    be checked from here) or a live process of this host (a file system that does not lock)."""
    if holder.host and holder.host != _host():
        return True
    return holder.pid != os.getpid() and _alive(holder.pid)


class StoreLock:
    """The write lock of one case store.  ``StoreLock(path, "leukoscan-cli classify").acquire()``; then
    :meth:`release` (or use it as a context manager).  :meth:`acquire` raises :class:`StoreLocked`
    (another writer) or ``OSError`` (the folder cannot be written)."""

    def __init__(self, store: str | Path, program: str = "LeukoScan"):
        self.store = real_store(store)
        self.path = lock_path(self.store)
        self.program = " ".join(str(program).split()) or "LeukoScan"
        self._fd: int | None = None
        self.took_over: str = ""  # the log line, when a stale lock was taken over

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StoreLock:
        if self._fd is not None:
            return self
        try:
            links = os.stat(self.store).st_nlink
        except OSError:
            links = 1  # not made yet
        if links > 1:  # a hard link is another name of the same file, with a lock file of its own: refused
            raise StoreLocked(
                f"the case store {self.store} has {links} names (hard links): another name could be written past "
                "its lock; keep one name (copy the file instead of linking it)"
            )
        for _ in range(20):  # the file may be removed/replaced between open and lock: try again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                if not _try_lock(fd):
                    holder = read_holder(self.store)
                    raise StoreLocked(self._busy(holder), holder)
                try:  # still the file at the path (not one a releasing holder just unlinked)?
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    _unlock(fd)
                    os.close(fd)
                    continue
                old = os.read(fd, 4096).decode("utf-8", "replace")
                holder = Holder.parse(old)
                if holder is not None and holder.pid != os.getpid() and _blocks(holder):
                    _unlock(fd)
                    raise StoreLocked(self._busy(holder, checked=False), holder)
                if holder is not None and holder.pid != os.getpid():
                    self.took_over = (
                        f"took over the stale lock of {self.store.name}: {holder.describe()} is no longer running"
                    )
                    log.warning("%s", self.took_over)
                text = f"{os.getpid()}\n{self.program}\n{_host()}\n{utc_now()}\n".encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, text)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self
        raise StoreLocked(f"the case store {self.store.name} keeps changing hands; try again")

    def _busy(self, holder: Holder | None, checked: bool = True) -> str:
        who = holder.describe() if holder is not None else "another program"
        msg = f"the case store {self.store} is being written by {who}"
        if not checked:
            msg += (
                f"; if that program is no longer running, delete {self.path.name}"
                if holder and holder.host and holder.host != _host()
                else ""
            )
        return (
            msg + "; close it there first (reading commands such as report, verify and export "
            "--no-bookkeeping work meanwhile)"
        )

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            try:  # remove it while still holding it, so nobody takes a lock on a file about to vanish
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    os.unlink(self.path)
            except OSError:
                pass
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - a forgotten lock still goes with its object
        try:
            self.release()
        except Exception:
            pass


def reader_files(store: str | Path) -> list[str]:
    """The ``-wal``/``-shm`` suffixes not beside ``store`` now: what a read-only connection would leave behind."""
    return [s for s in WAL_FILES if not os.path.lexists(f"{store}{s}")]


def remove_reader_files(store: str | Path, made: list[str]) -> None:
    """Remove the empty ``-wal``/``-shm`` (suffixes ``made``: :func:`reader_files` before the open) that SQLite
    made for a read-only connection, now closed; left alone when a writer holds the store (its lock) or wrote
    to the ``-wal`` meanwhile.  A reader then leaves nothing behind."""
    if not made:
        return
    wal = Path(f"{store}-wal")
    try:
        if is_locked(store) or (wal.exists() and wal.stat().st_size):
            return
        for s in made:
            try:
                os.unlink(f"{store}{s}")
            except FileNotFoundError:
                pass
    except OSError:
        pass
