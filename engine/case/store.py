"""The case store: one SQLite file per session, written as the case document changes.

:meth:`CaseStore.attach` subscribes to a :class:`~.document.CaseDocument`; each event becomes typed operations
(:mod:`.ops`) on the caller's thread (no file I/O there) and ONE writer thread (:mod:`.writer`) commits them, one
transaction per event (a batch of results is one event), so killing the process loses at most the batch in flight.
:meth:`CaseStore.load` rebuilds the document (cases, cells, every model's results, thresholds, reviews, undo/redo
history: :mod:`.replay`) without classifying anything.

The file is an ordinary SQLite 3 database (WAL journal: ``<file>-wal`` and ``<file>-shm`` beside it while it is
open); any SQLite tool can read it (``sqlite3 case.leukoscan "SELECT ..."``).  Its schema, the migrations and the
checks on opening are in :mod:`.schema`; a headless classification into a store is :mod:`.headless`.  The names
callers used from here before the split are still importable from this module.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import __version__
from . import audit, ledger, loader, record_check
from .document import CaseDocument
from .events import CaseEvent, Cleared
from .kinds import StoreErrorKind
from .lock import reader_files
from .ops import OPS_OF, ArchiveCase, PutStats, SetMeta, StoreOp, ops_of, snapshot
from .schema import (
    MIGRATIONS,
    SQLITE_MAGIC,
    StoreError,
    check_and_migrate,
    connect,
    connect_read_only,
    move_aside,
    one_line,
    schema_version,
)
from .values import utc_now
from .writer import StoreWriter, file_stat, write

__all__ = [
    "MIGRATIONS",
    "OPS_OF",
    "SQLITE_MAGIC",
    "CaseStore",
    "StoreError",
    "move_aside",
    "schema_version",
]


class CaseStore:
    """One open case file.  Use :meth:`open`; then :meth:`load` and/or :meth:`attach`; :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn  # reads (load, changed_files, history); guarded by _lock
        self._lock = threading.Lock()
        self._loaded: weakref.ref[CaseDocument] | None = None  # the document load() returned (already in the file)
        self._doc: CaseDocument | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._writer: StoreWriter | None = None  # from attach() on
        self._last_unexported: bool | None = None
        self.on_error: Callable[[str], None] | None = None
        self.errors: list[str] = []  # every failed write's message (also given to on_error)
        self._closed = False
        self._made: list[str] = []  # read-only: the -wal/-shm this reader's connection made
        self._cleared = False  # the document closed its cases: this record follows it no further
        self._said_cleared = False
        self.problem: audit.Problem | None = None  # the record is broken (see verify): set on open

    # --- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, create: bool = True, read_only: bool = False) -> CaseStore:
        """Open (or with ``create`` make) the case file at ``path``, migrated to the current schema.
        ``read_only``: for reading commands (``report``, ``verify``, ``export --no-bookkeeping``): opened with
        SQLite's ``mode=ro`` (``immutable`` on read-only media), nothing is ever written, not even the WAL
        files; such a store can be read but not attached.  Raises :class:`StoreError`."""
        path = Path(os.path.abspath(Path(path).expanduser()))
        exists = path.exists()
        if read_only:
            create = False
        if not exists and not create:
            raise StoreError(f"{path}: no such case file", StoreErrorKind.MISSING)
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a case file", StoreErrorKind.IO)
        if exists:
            try:
                with open(path, "rb") as fh:
                    head = fh.read(100)
            except OSError as exc:
                raise StoreError(f"cannot read {path} ({exc.strerror or exc})", StoreErrorKind.IO) from None
            if head and not head.startswith(SQLITE_MAGIC):
                raise StoreError(
                    f"{path} is not a LeukoScan case file (not an SQLite database)", StoreErrorKind.NOT_SQLITE
                )
            if not head and not create:  # an existing empty file is made a store only by a command that creates one
                raise StoreError(f"{path} is empty (0 bytes): not a LeukoScan case file", StoreErrorKind.NOT_SQLITE)
            if head and len(head) < 100:
                raise StoreError(f"{path} is damaged (truncated to {len(head)} bytes)", StoreErrorKind.DAMAGED)
        else:
            try:  # owner-only, like every file that holds patient data (SQLite gives -wal/-shm the same mode)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create {path} ({exc.strerror or exc})", StoreErrorKind.IO) from None
        sidecars = reader_files(path) if read_only else []
        conn = None
        try:
            conn = connect_read_only(path) if read_only else connect(path)
            check_and_migrate(conn, path, read_only)
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            msg = one_line(exc)
            kind = (
                StoreErrorKind.IO
                if isinstance(exc, sqlite3.OperationalError)
                and ("locked" in msg or "unable to open" in msg or "readonly" in msg or "disk" in msg)
                else StoreErrorKind.DAMAGED
            )
            raise StoreError(
                f"{path} is damaged ({msg})" if kind == StoreErrorKind.DAMAGED else f"{path} cannot be used ({msg})",
                kind,
            ) from None
        store = cls(path, conn)
        store._made = sidecars  # -wal/-shm that SQLite made for this reader: removed again on close
        store.problem = store.verify(flush=False)
        return store

    def verify(self, flush: bool = True) -> audit.Problem | None:
        """None when the history chain is intact and the live reviews and sign-offs are what it leads to;
        else the first broken row and why (:func:`.record_check.verify`).  Read-only."""
        if flush:
            self.flush()
        if self.version < 3:
            return None  # pragma: no cover - a store this LeukoScan opened is migrated
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            try:
                return record_check.verify(c)
            except sqlite3.DatabaseError as exc:
                return audit.Problem(str(self.path), f"cannot be checked ({one_line(exc)})")
            finally:
                c.execute("COMMIT")

    def head(self) -> tuple[int, str]:
        """(rows, SHA-256) of the end of the history chain: a report that prints it pins the record."""
        self.flush()
        with self._lock:
            return audit.head(self._conn)

    def compare(self, anchor: Any) -> tuple[bool, list[str]]:
        """The record against a report's anchor (:func:`.anchor.compare`): (still holds it, lines)."""
        from .anchor import compare

        self.flush()
        with self._lock:
            return compare(self._conn, anchor)

    # --- reading -------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @staticmethod
    def peek(path: str | Path) -> dict[str, str]:
        """The meta values of a store plus its ``cells`` and ``reviews`` counts, read-only (no migration,
        no write): what a restore prompt shows.  Raises :class:`StoreError` for a file that is no store."""
        from .lock import remove_reader_files

        made = reader_files(Path(path).resolve())
        try:
            conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: {one_line(exc)}", StoreErrorKind.IO) from None
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            meta["cells"] = str(conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
            meta["reviews"] = str(conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0])
            events = conn.execute("SELECT COUNT(*) FROM review_events").fetchone()[0]
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='case_events'").fetchone():
                events += conn.execute("SELECT COUNT(*) FROM case_events").fetchone()[0]
            meta["events"] = str(events)  # audit-trail rows (kept even when the cases were closed)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{path}: not a readable LeukoScan case store ({one_line(exc)})", StoreErrorKind.DAMAGED
            ) from None
        finally:
            conn.close()
            remove_reader_files(Path(path).resolve(), made)
        return meta

    def meta(self) -> dict[str, str]:
        self.flush()
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def load(self) -> CaseDocument:
        """The document as stored: cases, opened paths, cells, every model's results and facts,
        thresholds, the current model, reviews, export state and the undo/redo history.  Nothing is
        classified and no event reaches any listener (the new document has none).  Raises
        :class:`StoreError` when the content cannot be read (damage that ``quick_check`` did not see)."""
        self.flush()
        try:
            return self._load()
        except StoreError:
            raise
        except (sqlite3.Error, KeyError, ValueError, TypeError) as exc:
            raise StoreError(f"{self.path} cannot be read ({one_line(exc)})", StoreErrorKind.DAMAGED) from None

    def _load(self) -> CaseDocument:
        with self._lock:
            c = self._conn
            c.execute("BEGIN")  # one consistent snapshot while the writer may be committing
            try:
                rows = loader.read_rows(c)
            finally:
                c.execute("COMMIT")
        doc = loader.document_of(rows)
        self._loaded = weakref.ref(doc)
        return doc

    def review_events(self) -> list[dict[str, Any]]:
        """Every row of the audit trail, oldest first, as dicts."""
        self.flush()
        with self._lock:
            cur = self._conn.execute("SELECT * FROM review_events ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def case_events(self) -> list[dict[str, Any]]:
        """Every row of the sign-off log (``case_events``: sign_off / reopen), oldest first, as dicts."""
        self.flush()
        with self._lock:
            cur = self._conn.execute("SELECT * FROM case_events ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def changed_files(self) -> list[str]:
        """Cells whose file's size or mtime differ from the stored ones (stat only; a missing file, or
        one never classified, is not "changed").  Re-hash them with :func:`rehash_changed`."""
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, size, mtime_ns FROM cells WHERE size IS NOT NULL ORDER BY id"
            ).fetchall()
        changed = []
        for path, size, mtime in rows:
            now = file_stat(path)
            if now[0] is not None and now != (size, mtime):
                changed.append(path)
        return changed

    # --- writing -------------------------------------------------------------------------------------
    def attach(self, doc: CaseDocument, on_error: Callable[[str], None] | None = None) -> None:
        """Write every later change of ``doc`` to this file (in a writer thread).  A document that
        :meth:`load` did not return from this store is first written as it stands."""
        if self._closed:
            raise RuntimeError("the case store is closed")
        if self._doc is not None:
            raise RuntimeError("a document is already attached to this case store")
        if on_error is not None:
            self.on_error = on_error
        self._doc = doc
        self._last_unexported = doc.unexported
        self._writer = StoreWriter(self.path, self._report)
        atexit.register(self.close)  # a process that forgets close() still writes what is queued
        loaded = self._loaded() if self._loaded is not None else None
        batch: list[StoreOp] = [
            SetMeta({"app_version": __version__, "closed_at": ""})
        ]  # open again: an orphan if killed
        if loaded is not doc:
            batch += snapshot(doc)
        self._writer.put(batch)
        self._unsubscribe = doc.subscribe(self._on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._doc = None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed (or failed).  False on timeout."""
        return True if self._writer is None else self._writer.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush, stop the writer, close the file.  False when the writer did not finish in time."""
        if self._closed:
            return True
        atexit.unregister(self.close)
        self.detach()
        done = self.flush(timeout)
        if self._writer is not None:
            done = self._writer.stop(timeout) and done
        self._closed = True
        with self._lock:
            self._conn.close()
        self._remove_reader_files()
        return done

    def _remove_reader_files(self) -> None:
        """A read-only open leaves nothing behind: the empty ``-wal``/``-shm`` SQLite made for it (a reader cannot
        fold them back) are removed, unless a writer holds the store meanwhile (its lock) or wrote to them."""
        from .lock import remove_reader_files

        made, self._made = self._made, []
        remove_reader_files(self.path, made)

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def archive(self, root: str, by: str, reason: str = "", at: str | None = None) -> None:
        """Archive the case of ``root``: kept whole (a case record is never removed; closing the cases only
        closes the view), marked as no longer worked on, the chain naming who, when and why.  ValueError for an
        unknown case or a missing name (:class:`.audit.RecordRefused` for one with control characters)."""
        by = audit.check_name(by, "name")
        if not by:
            raise ValueError("archiving a case needs the name of who archives it")
        op = ArchiveCase(str(root), by, at or utc_now(), " ".join(str(reason or "").split()))
        self.flush()
        with self._lock:
            known = self._conn.execute("SELECT 1 FROM cases WHERE root=?", (op.root,)).fetchone()
        if known is None:
            raise ValueError(f"no case {op.root!r} in {self.path}")
        if self._writer is not None:
            self._writer.put([op])
            self.flush()
            return
        with self._lock:
            write(self._conn, [op])

    def archived(self) -> dict[str, tuple[str, str, str]]:
        """root -> (by, at, reason) of every archived case."""
        self.flush()
        with self._lock:
            return ledger.archived(self._conn)

    def record_stats(self, rows: Iterable[tuple[str, int | None, int | None]]) -> None:
        """Store (path, size, mtime_ns) of files whose content was found unchanged (:func:`rehash_changed`), so
        :meth:`changed_files` no longer lists them.  Needs :meth:`attach` (the writer thread writes it)."""
        if self._writer is None:
            raise RuntimeError("the case store is not attached to a document")
        self._writer.put([PutStats(tuple(rows))])

    def _report(self, msg: str) -> None:
        self.errors.append(msg)
        cb = self.on_error
        if cb is not None:
            try:
                cb(msg)
            except Exception:
                pass

    # The listener: caller's thread, no I/O; Cells mutate later, so copy what is needed now.
    def _on_event(self, ev: CaseEvent) -> None:
        doc = self._doc
        if doc is None:
            return
        if self._cleared:  # the record was closed: only its bookkeeping (closed_at) is still written
            batch: list[StoreOp] = [op for op in ops_of(doc, ev) if isinstance(op, SetMeta)]
            if len(batch) < len(ops_of(doc, ev)) and not self._said_cleared:
                self._said_cleared = True
                self._report(
                    f"the cases of {self.path} were closed: that record is kept as it is and no longer follows "
                    "this window; what is opened now needs a new case store"
                )
            if batch and self._writer is not None:
                self._writer.put(batch)
            return
        if isinstance(ev, Cleared):
            self._cleared = True
        try:
            batch = ops_of(doc, ev)
            if doc.unexported != self._last_unexported:
                self._last_unexported = doc.unexported
                batch.append(SetMeta({"unexported": "1" if doc.unexported else "0"}))
        except Exception as exc:
            self._report(f"cannot save the case file {self.path}: {one_line(exc)}")
            return
        if batch and self._writer is not None:
            self._writer.put(batch)
