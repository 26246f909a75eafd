"""The case store: one SQLite file per session, written as the case document changes.

:meth:`CaseStore.attach` subscribes to a :class:`~.document.CaseDocument`; each event is copied into
plain tuples on the caller's thread (no file I/O there) and written by ONE writer thread, one
transaction per event (a batch of results is one event), so killing the process loses at most the
batch in flight.  :meth:`CaseStore.load` rebuilds the document (cases, cells, every model's results,
thresholds, reviews, undo/redo history) without classifying anything.

The file is an ordinary SQLite 3 database (WAL journal: ``<file>-wal`` and ``<file>-shm`` beside it
while it is open); any SQLite tool can read it (``sqlite3 case.leukoscan "SELECT ..."``).

Schema version 3 (``PRAGMA user_version`` = the ``meta`` row ``schema_version``)::

    meta(key TEXT PRIMARY KEY, value TEXT)
        schema_version, session_id, started (ISO 8601 UTC), saved (last commit), app_version (the LeukoScan
        that last attached to it), model (the current model's name), exported_at (last export, "" if none),
        unexported ("1": reviews, sample ids, sign-offs or threshold changed since the last export, else "0"),
        history_from (review_events.id of the last event before the cases were closed: the undo history
        restored starts after it)
    cases(id INTEGER PRIMARY KEY, root TEXT UNIQUE NOT NULL, name TEXT NOT NULL, sample_id TEXT NOT NULL DEFAULT '')
        one per opened root folder, in opening order; name = display name; sample_id typed by the technician
    opened(path TEXT PRIMARY KEY, is_dir INTEGER NOT NULL)
        what was opened (a restore re-scans these)
    cells(id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases, path TEXT UNIQUE NOT NULL,
          folder TEXT NOT NULL, size INTEGER, mtime_ns INTEGER)
        one per image, in scan order; folder relative to the case root ("." = the root);
        size/mtime_ns: the file's when it was last classified (to notice a changed image)
    models(name TEXT, card_sha256 TEXT, version TEXT, threshold REAL, review_margin REAL,
           member_names TEXT /*JSON list*/, provider TEXT, display_name TEXT, PRIMARY KEY(name, card_sha256))
        every model (card version) that produced a result; threshold = the card's
    results(cell_id INTEGER REFERENCES cells, model TEXT, card_sha256 TEXT, sha256 TEXT, status TEXT /*ok|error*/,
            error TEXT, p_all REAL, member_p TEXT /*JSON {member: p}*/, members_disagree INTEGER, qc TEXT,
            classified_at TEXT, PRIMARY KEY(cell_id, model))
        one per cell and model; sha256 of the image bytes classified; p_all = calibrated P(ALL);
        qc = why the image failed the input quality check ("" = passed)
    thresholds(model TEXT PRIMARY KEY, value REAL NOT NULL)
        a threshold the user set (absent: the card's)
    reviews(cell_id INTEGER PRIMARY KEY REFERENCES cells, label TEXT /*ALL|HEM*/, reviewer TEXT, reviewed_at TEXT,
            sha256 TEXT, model TEXT, model_version TEXT, model_label TEXT, p_all REAL)
        the current review of each cell and what the model said at that moment
    review_events(id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER NOT NULL, action TEXT NOT NULL,
                  cell_id INTEGER, path TEXT NOT NULL, old_label TEXT, new_label TEXT, reviewer TEXT,
                  at TEXT NOT NULL, model TEXT, model_version TEXT, model_label TEXT, p_all REAL, sha256 TEXT)
        the audit trail, append-only (triggers refuse UPDATE and DELETE); one row per cell and change;
        action: "review" (set or cleared), "undo", "redo" (step = the undo step's own number), "stale"
        (the image changed after it was reviewed: the review was set aside; step 0, it is not undoable).  reviewer/at: who did it,
        when; model..p_all/sha256: the review the row sets (for a clear or "stale": the one removed).
        Rows are kept when the cases are closed: cell_id may then point nowhere, path still names the image.
    signoffs(case_id INTEGER PRIMARY KEY REFERENCES cases, signed_off_by TEXT NOT NULL, signed_off_at TEXT NOT NULL,
             comment TEXT NOT NULL DEFAULT '', basis TEXT NOT NULL DEFAULT '')                  (version 2)
        the current sign-off of each signed-off case (a reopened case has none)
    case_events(id INTEGER PRIMARY KEY AUTOINCREMENT, case_root TEXT NOT NULL, action TEXT NOT NULL /*sign_off|reopen*/,
                by TEXT NOT NULL, at TEXT NOT NULL, text TEXT NOT NULL DEFAULT '',
                basis TEXT NOT NULL DEFAULT '')                                                 (version 2)
        the sign-off audit trail, append-only like review_events; text = the sign-off's comment or the
        reason for reopening; kept when the cases are closed (case_root names the case)
    review_events and case_events also have (version 3): seq INTEGER, prev_hash TEXT, hash TEXT,
        recorded_at TEXT, recorded_by TEXT -- one SHA-256 hash chain over both logs and the engine's own
        clock and OS account (:mod:`.audit`); triggers *_no_replace refuse an INSERT (OR REPLACE) of an
        existing id.  The live reviews and signoffs must be what the history leads to (checked on open:
        :attr:`CaseStore.problem`, and by :meth:`CaseStore.verify` before every export).

Versions: :data:`MIGRATIONS` [i] migrates version i to i + 1 (0 = an empty file), each in one
transaction.  A file that is not SQLite, is damaged (``PRAGMA quick_check``), or comes from a newer
LeukoScan raises :class:`StoreError`; :func:`move_aside` renames such a file out of the way (never deletes).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import queue
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .. import __version__
from ..fileio import FileRefused, read_regular_file
from ..pipeline import ScanItem
from . import audit
from . import events
from .rules import is_review_label
from .document import (Case, CaseDocument, Cell, Event, ModelFacts, Result, Review, ReviewChange, SignOff, Step,
                       utc_now)

SQLITE_MAGIC = b"SQLite format 3\x00"

# ------------------------------------------------------------------------------------------ schema

_V1 = (
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE cases(id INTEGER PRIMARY KEY, root TEXT UNIQUE NOT NULL, name TEXT NOT NULL,"
    " sample_id TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE opened(path TEXT PRIMARY KEY, is_dir INTEGER NOT NULL)",
    "CREATE TABLE cells(id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases(id),"
    " path TEXT UNIQUE NOT NULL, folder TEXT NOT NULL, size INTEGER, mtime_ns INTEGER)",
    "CREATE INDEX cells_case ON cells(case_id)",
    "CREATE TABLE models(name TEXT NOT NULL, card_sha256 TEXT NOT NULL, version TEXT, threshold REAL,"
    " review_margin REAL, member_names TEXT, provider TEXT, display_name TEXT, PRIMARY KEY(name, card_sha256))",
    "CREATE TABLE results(cell_id INTEGER NOT NULL REFERENCES cells(id), model TEXT NOT NULL, card_sha256 TEXT,"
    " sha256 TEXT, status TEXT, error TEXT, p_all REAL, member_p TEXT, members_disagree INTEGER, qc TEXT,"
    " classified_at TEXT, PRIMARY KEY(cell_id, model))",
    "CREATE TABLE thresholds(model TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE reviews(cell_id INTEGER PRIMARY KEY REFERENCES cells(id), label TEXT NOT NULL,"
    " reviewer TEXT, reviewed_at TEXT, sha256 TEXT, model TEXT, model_version TEXT, model_label TEXT, p_all REAL)",
    "CREATE TABLE review_events(id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER NOT NULL, action TEXT NOT NULL,"
    " cell_id INTEGER, path TEXT NOT NULL, old_label TEXT, new_label TEXT, reviewer TEXT, at TEXT NOT NULL,"
    " model TEXT, model_version TEXT, model_label TEXT, p_all REAL, sha256 TEXT)",
    "CREATE INDEX review_events_cell ON review_events(cell_id)",
    "CREATE INDEX review_events_path ON review_events(path)",
    "CREATE TRIGGER review_events_no_update BEFORE UPDATE ON review_events"
    " BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END",
    "CREATE TRIGGER review_events_no_delete BEFORE DELETE ON review_events"
    " BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END",
)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    for stmt in _V1:
        conn.execute(stmt)


_V2 = (
    "CREATE TABLE signoffs(case_id INTEGER PRIMARY KEY REFERENCES cases(id), signed_off_by TEXT NOT NULL,"
    " signed_off_at TEXT NOT NULL, comment TEXT NOT NULL DEFAULT '', basis TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE case_events(id INTEGER PRIMARY KEY AUTOINCREMENT, case_root TEXT NOT NULL,"
    " action TEXT NOT NULL CHECK(action IN ('sign_off', 'reopen')), by TEXT NOT NULL, at TEXT NOT NULL,"
    " text TEXT NOT NULL DEFAULT '', basis TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX case_events_root ON case_events(case_root)",
    "CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events"
    " BEGIN SELECT RAISE(ABORT, 'the sign-off log is append-only'); END",
    "CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events"
    " BEGIN SELECT RAISE(ABORT, 'the sign-off log is append-only'); END",
)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Version 2: case sign-off (the current state, and its append-only log)."""
    for stmt in _V2:
        conn.execute(stmt)


_V3 = tuple(
    [f"ALTER TABLE {t} ADD COLUMN {c}" for t in audit.TABLES for c in
     ("seq INTEGER", "prev_hash TEXT", "hash TEXT", "recorded_at TEXT", "recorded_by TEXT")]
    + [f"CREATE INDEX {t}_seq ON {t}(seq)" for t in audit.TABLES]
    + [f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} WHEN EXISTS(SELECT 1 FROM {t} WHERE id = NEW.id)"
       f" BEGIN SELECT RAISE(ABORT, 'the {what} log is append-only: that row exists'); END"
       for t, what in (("review_events", "review"), ("case_events", "sign-off"))]
)


def _migrate_v3(conn: sqlite3.Connection) -> None:
    """Version 3: the tamper-evident history.  Rows written before get hashed as they are (in id order,
    review events first), then an ``upgrade`` marker and whatever makes the history explain the live
    reviews and sign-offs (:func:`.audit.reconcile`)."""
    for stmt in _V3:
        conn.execute(stmt)
    legacy = any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                 for t in ("review_events", "case_events", "reviews", "signoffs"))
    if not legacy:
        return
    triggers = {t: conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger' AND name=?", (f"{t}_no_update",))
                .fetchone()[0] for t in audit.TABLES}
    for t in audit.TABLES:  # inside the migration's transaction: put back before it commits
        conn.execute(f"DROP TRIGGER {t}_no_update")
    conn.execute("PRAGMA user_version=3")  # (in the same transaction) audit.append writes chained rows
    audit.chain_unchained(conn)
    for sql in triggers.values():
        conn.execute(sql)
    row = conn.execute("SELECT value FROM meta WHERE key='history_from'").fetchone()
    audit.reconcile(conn, int(row[0] or 0) if row else 0)


#: ``MIGRATIONS[i](conn)`` turns a version-i file into version i + 1 (inside a transaction the caller
#: commits, together with the new ``user_version``).  The current version is ``len(MIGRATIONS)``;
#: a new version is one more entry here.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1, _migrate_v2, _migrate_v3]


def schema_version() -> int:
    """The schema version this LeukoScan writes (the number of migrations it knows)."""
    return len(MIGRATIONS)


class StoreError(Exception):
    """The case file cannot be used; ``str()`` is a one-line reason.  ``kind``: "missing" | "not_sqlite" |
    "damaged" | "newer" | "io" (only "not_sqlite" and "damaged" are worth :func:`move_aside`)."""

    def __init__(self, message: str, kind: str = "damaged"):
        super().__init__(message)
        self.kind = kind


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def move_aside(path: str | Path) -> Path:
    """Rename an unusable case file (and its ``-wal``/``-shm``) to ``<name>.corrupt`` (``.corrupt-2``,
    ... when taken) and return the new path.  Nothing is deleted."""
    path = Path(path)
    n = 1
    while True:
        target = path.with_name(path.name + (".corrupt" if n == 1 else f".corrupt-{n}"))
        if not any(os.path.lexists(f"{target}{s}") for s in ("", "-wal", "-shm", "-journal")):
            break
        n += 1
    for s in ("", "-wal", "-shm", "-journal"):
        src = f"{path}{s}"
        if os.path.lexists(src):
            os.rename(src, f"{target}{s}")
    return target


# ------------------------------------------------------------------------------------------ helpers


def _facts_row(f: ModelFacts) -> tuple:
    return (f.name, f.card_sha256, f.version, float(f.threshold), float(f.review_margin),
            json.dumps(list(f.member_names)), f.active_provider, f.display_name)


def _stat(path: str) -> tuple[int | None, int | None]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None, None
    return st.st_size, st.st_mtime_ns


def _review_fields(rv: Review | None) -> tuple:
    if rv is None:
        return "", "", None, None, ""
    return rv.model, rv.model_version, rv.model_label, rv.p_all, rv.sha256


_Op = tuple  # (name, *args): one write, in the writer thread


MAX_BACKLOG = 10_000  # failed batches kept for a retry (then the oldest changes are reported lost)


def _retryable(exc: BaseException) -> bool:
    """A failure that may pass (disk full, file locked or read-only for a while), not a bug in the batch."""
    return isinstance(exc, (sqlite3.OperationalError, OSError))


class CaseStore:
    """One open case file.  Use :meth:`open`; then :meth:`load` and/or :meth:`attach`; :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn  # reads (load, changed_files, history); guarded by _lock
        self._lock = threading.Lock()
        self._loaded: weakref.ref | None = None  # the document load() returned (already in the file)
        self._doc: CaseDocument | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._queue: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._last_unexported: bool | None = None
        self.on_error: Callable[[str], None] | None = None
        self.errors: list[str] = []  # every failed write's message (also given to on_error)
        self._closed = False
        self.problem: audit.Problem | None = None  # the record is broken (see verify): set on open

    # --- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, create: bool = True, read_only: bool = False) -> "CaseStore":
        """Open (or with ``create`` make) the case file at ``path``, migrated to the current schema.
        ``read_only``: for reading commands (``report``, ``verify``, ``export --no-bookkeeping``): opened with
        SQLite's ``mode=ro`` (``immutable`` on read-only media), nothing is ever written, not even the WAL
        files; such a store can be read but not attached.  Raises :class:`StoreError`."""
        path = Path(os.path.abspath(Path(path).expanduser()))
        exists = path.exists()
        if read_only:
            create = False
        if not exists and not create:
            raise StoreError(f"{path}: no such case file", "missing")
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a case file", "io")
        if exists:
            try:
                with open(path, "rb") as fh:
                    head = fh.read(100)
            except OSError as exc:
                raise StoreError(f"cannot read {path} ({exc.strerror or exc})", "io") from None
            if head and not head.startswith(SQLITE_MAGIC):
                raise StoreError(f"{path} is not a LeukoScan case file (not an SQLite database)", "not_sqlite")
            if head and len(head) < 100:
                raise StoreError(f"{path} is damaged (truncated to {len(head)} bytes)", "damaged")
        else:
            try:  # owner-only, like every file that holds patient data (SQLite gives -wal/-shm the same mode)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create {path} ({exc.strerror or exc})", "io") from None
        conn = None
        try:
            conn = cls._connect_read_only(path) if read_only else cls._connect(path)
            cls._check_and_migrate(conn, path, read_only)
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            msg = _one_line(exc)
            kind = "io" if isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "unable to open" in msg
                                                                           or "readonly" in msg or "disk" in msg) \
                else "damaged"
            raise StoreError(f"{path} is damaged ({msg})" if kind == "damaged" else f"{path} cannot be used ({msg})",
                             kind) from None
        store = cls(path, conn)
        store.problem = store.verify(flush=False)
        return store

    def verify(self, flush: bool = True) -> "audit.Problem | None":
        """None when the history chain is intact and the live reviews and sign-offs are what it leads to;
        else the first broken row and why (:func:`.audit.verify`).  Read-only."""
        if flush:
            self.flush()
        if self.version < 3:
            return None  # pragma: no cover - a store this LeukoScan opened is migrated
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            try:
                return audit.verify(c)
            except sqlite3.DatabaseError as exc:
                return audit.Problem(str(self.path), f"cannot be checked ({_one_line(exc)})")
            finally:
                c.execute("COMMIT")

    def head(self) -> tuple[int, str]:
        """(rows, SHA-256) of the end of the history chain: a report that prints it pins the record."""
        self.flush()
        with self._lock:
            return audit.head(self._conn)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @staticmethod
    def _connect_read_only(path: Path) -> sqlite3.Connection:
        from urllib.parse import quote

        uri = "file:" + quote(str(path)) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:  # read-only media: no -shm can be made beside a WAL file
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        return conn

    @staticmethod
    def _check_and_migrate(conn: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
        known = schema_version()
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # raises on a file that is not a database
        if version > known:
            raise StoreError(f"{path} was written by a newer LeukoScan (case file version {version}; this one "
                             f"reads up to {known}); open it with that version", "newer")
        check = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        if check != ["ok"]:
            raise StoreError(f"{path} is damaged ({check[0] if check else 'quick_check failed'})", "damaged")
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(f"{path} is an SQLite database but not a LeukoScan case file", "not_sqlite")
        if version > 0:
            try:
                row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is None or str(row[0]) != str(version):
                raise StoreError(f"{path} is not a consistent LeukoScan case file (schema version "
                                 f"{row[0] if row else 'missing'} in meta, {version} in the header)", "damaged")
        if read_only:
            if version < known:
                raise StoreError(f"{path} was written by an older LeukoScan (case file version {version}); open it "
                                 "once with write access to upgrade it", "io")
            return
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - a file system without shared memory
            conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=NORMAL")
        for v in range(version, known):
            conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[v](conn)
                conn.execute(f"PRAGMA user_version={v + 1}")
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)", (str(v + 1),))
                conn.execute("COMMIT")
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{path}: upgrading the case file to version {v + 1} failed "
                                 f"({_one_line(exc)}); it was left at version {v}", "io") from None
        now = utc_now()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)",
                         [("session_id", os.urandom(6).hex()), ("started", now), ("saved", now),
                          ("app_version", __version__), ("model", ""), ("exported_at", ""), ("unexported", "0"),
                          ("history_from", "0")])
        conn.execute("COMMIT")

    # --- reading -------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        with self._lock:
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    @staticmethod
    def peek(path: str | Path) -> dict[str, str]:
        """The meta values of a store plus its ``cells`` and ``reviews`` counts, read-only (no migration,
        no write): what a restore prompt shows.  Raises :class:`StoreError` for a file that is no store."""
        try:
            conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5.0)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: {_one_line(exc)}", "io") from None
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            meta["cells"] = str(conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
            meta["reviews"] = str(conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0])
            events = conn.execute("SELECT COUNT(*) FROM review_events").fetchone()[0]
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name='case_events'").fetchone():
                events += conn.execute("SELECT COUNT(*) FROM case_events").fetchone()[0]
            meta["events"] = str(events)  # audit-trail rows (kept even when the cases were closed)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a readable LeukoScan case store ({_one_line(exc)})", "damaged") from None
        finally:
            conn.close()
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
            raise StoreError(f"{self.path} cannot be read ({_one_line(exc)})", "damaged") from None

    def _load(self) -> CaseDocument:
        with self._lock:
            c = self._conn
            c.execute("BEGIN")  # one consistent snapshot while the writer may be committing
            try:
                meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
                case_rows = c.execute("SELECT id, root, name, sample_id FROM cases ORDER BY id").fetchall()
                opened = c.execute("SELECT path, is_dir FROM opened ORDER BY rowid").fetchall()
                model_rows = c.execute("SELECT name, card_sha256, version, threshold, review_margin, member_names,"
                                       " provider, display_name FROM models ORDER BY rowid").fetchall()
                thr_rows = c.execute("SELECT model, value FROM thresholds").fetchall()
                cell_rows = c.execute("SELECT id, case_id, path, folder, size, mtime_ns FROM cells ORDER BY id")\
                    .fetchall()
                result_rows = c.execute("SELECT cell_id, model, card_sha256, sha256, status, error, p_all, member_p,"
                                        " members_disagree, qc FROM results").fetchall()
                review_rows = c.execute("SELECT cell_id, label, reviewer, reviewed_at, sha256, model, model_version,"
                                        " model_label, p_all FROM reviews").fetchall()
                history_from = int(meta.get("history_from") or 0)
                event_rows = c.execute("SELECT step, action, path, old_label, new_label, reviewer, at, model,"
                                       " model_version, model_label, p_all, sha256 FROM review_events WHERE id > ?"
                                       " ORDER BY id", (history_from,)).fetchall()
                last_step = c.execute("SELECT max(step) FROM review_events WHERE action IN ('review', 'undo',"
                                      " 'redo')").fetchone()[0] or 0
                signoff_rows = c.execute("SELECT case_id, signed_off_by, signed_off_at, comment, basis FROM signoffs")\
                    .fetchall()
            finally:
                c.execute("COMMIT")

        doc = CaseDocument(session_id=meta.get("session_id") or None)
        doc.started = meta.get("started") or doc.started
        roots: dict[int, tuple[Case, Path]] = {}
        for cid, root, name, sample_id in case_rows:
            # a case is its root: two stored with one display name (two runs that loaded the file before
            # either wrote) stay two cases, the later one renamed as case_of_root would have named it
            case = Case(root, doc.unique_name(root, name), sample_id or "")
            doc.cases[root] = case
            roots[cid] = (case, Path(root))
        for cid, by, at, comment, basis in signoff_rows:
            if cid in roots:
                roots[cid][0].signoff = SignOff(by, at, comment or "", basis or "")
        doc.opened = {p: bool(d) for p, d in opened}
        for name, card, version, thr, margin, members, provider, display in model_rows:
            doc.facts[name] = ModelFacts(name, version or "", card, float(thr), float(margin),
                                         tuple(json.loads(members or "[]")), provider or "", display or name)
        doc.thresholds = {m: float(v) for m, v in thr_rows}

        items = []
        for cid, case_id, path, folder, _size, _mtime in cell_rows:
            _case, root = roots[case_id]
            items.append(ScanItem(Path(path), root, folder))
        cells = doc.add_items(items, loading=True)  # nobody listens yet: no event goes anywhere
        by_id: dict[int, Cell] = {}
        for cell, (cid, _case_id, _path, _folder, size, mtime) in zip(cells, cell_rows):
            cell.size, cell.mtime_ns = size, mtime
            by_id[cid] = cell
        loads = json.loads
        for cid, model, card, sha, status, error, p_all, member_p, disagree, qc in result_rows:
            cell = by_id.get(cid)
            if cell is not None:
                cell.results[model] = Result(model, card or "", sha or "", status, error or "", p_all,
                                             loads(member_p) if member_p and member_p != "{}" else {},
                                             bool(disagree), qc or "")
        model = meta.get("model") or None
        if model in doc.facts:
            doc.set_model(doc.facts[model])  # derives every cell's class and flag
        for cid, label, reviewer, at, sha, rmodel, rversion, rlabel, rp in review_rows:
            cell = by_id.get(cid)
            if cell is not None and is_review_label(label):
                cell.review = Review(label, reviewer or "", at or "", sha or "", rmodel or "", rversion or "",
                                     rlabel, rp)
        doc.exported_at = meta.get("exported_at") or ""
        doc.unexported = meta.get("unexported") == "1"
        undo, redo = _replay(doc, event_rows)
        doc.load_history(undo, redo, last_step=int(last_step))
        self._loaded = weakref.ref(doc)
        return doc

    def review_events(self) -> list[dict]:
        """Every row of the audit trail, oldest first, as dicts."""
        self.flush()
        with self._lock:
            cur = self._conn.execute("SELECT * FROM review_events ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def case_events(self) -> list[dict]:
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
            rows = self._conn.execute("SELECT path, size, mtime_ns FROM cells WHERE size IS NOT NULL"
                                      " ORDER BY id").fetchall()
        changed = []
        for path, size, mtime in rows:
            now = _stat(path)
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
        self._thread = threading.Thread(target=self._writer, name="leukoscan-case-store", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a process that forgets close() still writes what is queued
        loaded = self._loaded() if self._loaded is not None else None
        ops: list[_Op] = [("meta", {"app_version": __version__, "closed_at": ""})]  # open again: an orphan if killed
        if loaded is not doc:
            ops += _snapshot(doc)
        self._put(ops)
        self._unsubscribe = doc.subscribe(self._on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._doc = None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed (or failed).  False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush, stop the writer, close the file.  False when the writer did not finish in time."""
        if self._closed:
            return True
        atexit.unregister(self.close)
        self.detach()
        done = self.flush(timeout)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            done = done and not self._thread.is_alive()
        self._closed = True
        with self._lock:
            self._conn.close()
        return done

    def __enter__(self) -> "CaseStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _put(self, ops: list[_Op]) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put(ops)

    def _report(self, msg: str) -> None:
        self.errors.append(msg)
        cb = self.on_error
        if cb is not None:
            try:
                cb(msg)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the writer
                pass

    # The listener: caller's thread, no I/O; Cells mutate later, so copy what is needed now.
    def _on_event(self, ev: Event) -> None:
        doc = self._doc
        if doc is None:
            return
        try:
            ops = _ops_of(doc, ev)
            if doc.unexported != self._last_unexported:
                self._last_unexported = doc.unexported
                ops.append(("meta", {"unexported": "1" if doc.unexported else "0"}))
        except Exception as exc:  # noqa: BLE001 - never break the document's event loop
            self._report(f"cannot save the case file {self.path}: {_one_line(exc)}")
            return
        if ops:
            self._put(ops)

    def _writer(self) -> None:
        try:
            conn = self._connect(self.path)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn = None
            self._report(f"cannot save the case file {self.path}: {_one_line(exc)}")
        backlog: list[list[_Op]] = []  # batches that failed for a reason that may pass (disk full, locked)
        try:
            while True:
                ops = self._queue.get()
                last = ops is None
                try:
                    if conn is None:
                        raise sqlite3.OperationalError("the case file could not be opened for writing")
                    while backlog:  # in order: an earlier failed batch first, so nothing is lost or reordered
                        self._commit(conn, backlog[0])
                        backlog.pop(0)
                    if ops is not None:
                        self._commit(conn, ops)
                except Exception as exc:  # noqa: BLE001 - a failed batch must not kill the writer
                    self._report(f"cannot save to the case file {self.path}: {_one_line(exc)}")
                    if ops is not None and (backlog or _retryable(exc)) and len(backlog) < MAX_BACKLOG:
                        backlog.append(ops)  # written again with the next change
                finally:
                    if ops is not None:
                        with self._cond:
                            self._pending -= 1
                            self._cond.notify_all()
                if last:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                getattr(self, "_w_" + op[0])(conn, *op[1:])
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('saved', ?)", (utc_now(),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # --- writes (writer thread) ----------------------------------------------------------------------
    @staticmethod
    def _w_meta(conn, values: dict) -> None:
        conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", list(values.items()))

    @staticmethod
    def _w_cases(conn, rows: list[tuple]) -> None:
        conn.executemany("INSERT INTO cases(root, name, sample_id) VALUES(?, ?, ?) ON CONFLICT(root) DO UPDATE"
                         " SET name=excluded.name, sample_id=excluded.sample_id", rows)

    @staticmethod
    def _w_opened(conn, rows: list[tuple]) -> None:
        conn.executemany("INSERT OR REPLACE INTO opened(path, is_dir) VALUES(?, ?)", rows)

    @staticmethod
    def _w_cells(conn, rows: list[tuple]) -> None:  # (path, root, folder)
        conn.executemany("INSERT OR IGNORE INTO cells(case_id, path, folder) SELECT id, ?, ? FROM cases WHERE root=?",
                         [(p, f, r) for p, r, f in rows])

    @staticmethod
    def _w_models(conn, rows: list[tuple], replace: bool) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"  # replace: the newest row of the name
        conn.executemany(f"{verb} INTO models(name, card_sha256, version, threshold, review_margin, member_names,"
                         " provider, display_name) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", rows)

    @staticmethod
    def _w_results(conn, pairs: list[tuple[str, Result]], stat: bool) -> None:
        at = utc_now()
        dumps = json.dumps
        conn.executemany(
            "INSERT OR REPLACE INTO results(cell_id, model, card_sha256, sha256, status, error, p_all, member_p,"
            " members_disagree, qc, classified_at) SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM cells WHERE path=?",
            [(r.model, r.card_sha256, r.sha256, r.status, r.error, r.p_all, dumps(r.member_p) if r.member_p else "{}",
              int(r.members_disagree), r.qc, at, key) for key, r in pairs])
        if stat:
            conn.executemany("UPDATE cells SET size=?, mtime_ns=? WHERE path=?",
                             [(*_stat(key), key) for key in dict.fromkeys(k for k, _ in pairs)])

    @staticmethod
    def _w_stats(conn, rows: list[tuple]) -> None:  # (path, size, mtime_ns) known already
        conn.executemany("UPDATE cells SET size=?, mtime_ns=? WHERE path=?", [(s, m, p) for p, s, m in rows])

    @staticmethod
    def _w_threshold(conn, model: str, value: float | None) -> None:
        if value is None:
            conn.execute("DELETE FROM thresholds WHERE model=?", (model,))
        else:
            conn.execute("INSERT OR REPLACE INTO thresholds(model, value) VALUES(?, ?)", (model, value))

    @staticmethod
    def _w_thresholds(conn, values: dict[str, float]) -> None:
        conn.execute("DELETE FROM thresholds")
        conn.executemany("INSERT INTO thresholds(model, value) VALUES(?, ?)", list(values.items()))

    @staticmethod
    def _w_set_reviews(conn, rows: list[tuple[str, Review]]) -> None:  # a snapshot: logged as "import"
        live = audit.live_reviews(conn)
        changed = [(k, rv) for k, rv in rows if live.get(k) != audit._review(
            rv.label, rv.reviewer, rv.reviewed_at, rv.sha256, rv.model, rv.model_version, rv.model_label, rv.p_all)]
        CaseStore._put_reviews(conn, changed)
        for key, rv in changed:
            audit._import(conn, key, live.get(key), audit._review(
                rv.label, rv.reviewer, rv.reviewed_at, rv.sha256, rv.model, rv.model_version, rv.model_label,
                rv.p_all))

    @staticmethod
    def _put_reviews(conn, rows: list[tuple[str, Review]]) -> None:  # the live table only
        conn.executemany(
            "INSERT OR REPLACE INTO reviews(cell_id, label, reviewer, reviewed_at, sha256, model, model_version,"
            " model_label, p_all) SELECT id, ?, ?, ?, ?, ?, ?, ?, ? FROM cells WHERE path=?",
            [(rv.label, rv.reviewer, rv.reviewed_at, rv.sha256, rv.model, rv.model_version, rv.model_label, rv.p_all,
              key) for key, rv in rows])

    @classmethod
    def _w_reviews(cls, conn, number: int, action: str, actor: str, at: str,
                   changes: list[tuple[str, Review | None, Review | None]]) -> None:
        cls._put_reviews(conn, [(k, new) for k, _old, new in changes if new is not None])
        conn.executemany("DELETE FROM reviews WHERE cell_id=(SELECT id FROM cells WHERE path=?)",
                         [(k,) for k, _old, new in changes if new is None])
        events = []
        for key, old, new in changes:
            who, when = actor, at
            if action == "review" and new is not None:
                who, when = new.reviewer, new.reviewed_at
            events.append((number, action, key, old.label if old else None, new.label if new else None, who,
                           when, *_review_fields(new if new is not None else old)))
        for number, action, key, old_label, new_label, who, when, model, version, mlabel, p_all, sha in events:
            cid = conn.execute("SELECT id FROM cells WHERE path=?", (key,)).fetchone()
            audit.append(conn, "review_events", {
                "step": number, "action": action, "cell_id": cid[0] if cid else None, "path": key,
                "old_label": old_label, "new_label": new_label, "reviewer": who, "at": when, "model": model,
                "model_version": version, "model_label": mlabel, "p_all": p_all, "sha256": sha})

    @staticmethod
    def _w_stale(conn, keys: list[str], content_changed: bool, at: str) -> None:
        for key in keys:
            row = conn.execute("SELECT r.cell_id, r.label, r.model, r.model_version, r.model_label, r.p_all, r.sha256"
                               " FROM reviews r JOIN cells c ON c.id = r.cell_id WHERE c.path=?", (key,)).fetchone()
            if row is not None:  # only a review that was still current is set aside (and logged)
                cid, label, *fields = row
                conn.execute("DELETE FROM reviews WHERE cell_id=?", (cid,))
                model, version, mlabel, p_all, sha = fields
                audit.append(conn, "review_events", {
                    "step": 0, "action": "stale", "cell_id": cid, "path": key, "old_label": label, "new_label": None,
                    "reviewer": "", "at": at, "model": model, "model_version": version, "model_label": mlabel,
                    "p_all": p_all, "sha256": sha})
            if content_changed:  # its results were dropped: classified again
                conn.execute("DELETE FROM results WHERE cell_id=(SELECT id FROM cells WHERE path=?)", (key,))

    @staticmethod
    def _w_set_signoffs(conn, rows: list[tuple]) -> None:  # (root, by, at, comment, basis): a snapshot, logged
        live = audit.live_signoffs(conn)
        known = {r[0] for r in conn.execute("SELECT root FROM cases")}
        changed = [r for r in rows if r[0] in known and live.get(r[0]) != tuple(x or "" for x in r[1:])]
        CaseStore._put_signoffs(conn, changed)
        for r in changed:
            audit.signoff_row(conn, r[0], tuple(x or "" for x in r[1:]))

    @staticmethod
    def _put_signoffs(conn, rows: list[tuple]) -> None:  # the live table only
        conn.executemany("INSERT OR REPLACE INTO signoffs(case_id, signed_off_by, signed_off_at, comment, basis)"
                         " SELECT id, ?, ?, ?, ? FROM cases WHERE root=?",
                         [(b, a, c, basis, r) for r, b, a, c, basis in rows])

    @classmethod
    def _w_signoff(cls, conn, root: str, action: str, by: str, at: str, text: str, basis: str = "") -> None:
        if action == "sign_off":
            cls._put_signoffs(conn, [(root, by, at, text, basis)])
        else:
            conn.execute("DELETE FROM signoffs WHERE case_id=(SELECT id FROM cases WHERE root=?)", (root,))
        audit.append(conn, "case_events", {"case_root": root, "action": action, "by": by, "at": at, "text": text,
                                           "basis": basis})

    @staticmethod
    def _w_cleared(conn) -> None:
        last = audit.append(conn, "review_events", {"step": 0, "action": "closed", "path": "", "at": utc_now()})
        for table in ("reviews", "results", "cells", "signoffs", "cases", "opened"):  # never the logs: the audit trail
            conn.execute(f"DELETE FROM {table}")
        conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
                         [("history_from", str(last)), ("unexported", "0")])


# ------------------------------------------------------------------------------------------ snapshots


def _ops_of(doc: CaseDocument, e: events.CaseEvent) -> list[_Op]:
    """The writes of one event, as plain values (Result and Review are frozen; Cells are not)."""
    return OPS_OF[type(e)](doc, e)


def _case_ops(doc: CaseDocument, e: events.CaseAdded) -> list[_Op]:
    case = doc.cases.get(e.root)
    return [("cases", [(case.root, case.name, case.sample_id)])] if case is not None else []


def _results_ops(doc: CaseDocument, e: events.ResultsStored) -> list[_Op]:
    ops: list[_Op] = []
    if e.facts is not None:
        ops.append(("models", [_facts_row(e.facts)], False))
    ops.append(("results", [(c.key, r) for c, r in e.results], True))
    return ops


def _reviews_ops(doc: CaseDocument, e: events.ReviewsChanged) -> list[_Op]:
    st = e.step
    return [("reviews", st.number, st.action, st.reviewer, st.at or utc_now(),
             [(ch.cell.key, ch.old, ch.new) for ch in st.changes])]


def _signoff_ops(doc: CaseDocument, e: events.SignOffChanged) -> list[_Op]:
    return [("signoff", e.root, e.action.value, e.by, e.at or utc_now(), e.text, e.basis)]


#: Every document event type -> the store writes it causes (tests/engine: every type has an entry).
OPS_OF: dict[type, Callable[[CaseDocument, Any], list[_Op]]] = {
    events.CaseAdded: _case_ops,
    events.CellsAdded: lambda doc, e: [("cells", [(c.key, str(c.root), c.folder) for c in e.cells])],
    events.ResultsStored: _results_ops,
    events.ReviewsChanged: _reviews_ops,
    events.ThresholdChanged: lambda doc, e: [("threshold", e.facts.name, doc.thresholds.get(e.facts.name))],
    events.ModelChanged: lambda doc, e: [("models", [_facts_row(e.facts)], True), ("meta", {"model": e.facts.name})],
    events.Cleared: lambda doc, e: [("cleared",)],
    events.SignOffChanged: _signoff_ops,
    events.StaleFound: lambda doc, e: [("stale", [c.key for c in e.cells], e.content_changed, utc_now())],
    events.PathOpened: lambda doc, e: [("opened", [(e.path, int(bool(doc.opened.get(e.path, False))))])],
    events.Closed: lambda doc, e: [("meta", {"closed_at": e.at})],
    events.Exported: lambda doc, e: [("meta", {"exported_at": e.at, "unexported": "1" if doc.unexported else "0"})],
    events.DecisionsChanged: lambda doc, e: [],  # derived, never stored
}


def _snapshot(doc: CaseDocument) -> list[_Op]:
    """The whole document as writes (a document that did not come from this store)."""
    ops: list[_Op] = [
        ("meta", {"session_id": doc.session_id, "started": doc.started, "model": doc.model or "",
                  "exported_at": doc.exported_at, "unexported": "1" if doc.unexported else "0"}),
        ("cases", [(c.root, c.name, c.sample_id) for c in doc.cases.values()]),
        ("opened", [(p, int(d)) for p, d in doc.opened.items()]),
        ("cells", [(c.key, str(c.root), c.folder) for c in doc.cells]),
        ("models", [_facts_row(f) for f in doc.facts.values() if f.name != doc.model], True),
    ]
    if doc.current is not None:
        ops.append(("models", [_facts_row(doc.current)], True))  # the newest row: the current model
    ops.append(("results", [(c.key, r) for c in doc.cells for r in c.results.values()], False))
    ops.append(("stats", [(c.key, c.size, c.mtime_ns) for c in doc.cells if c.size is not None]))
    ops.append(("thresholds", dict(doc.thresholds)))
    ops.append(("set_reviews", [(c.key, c.review) for c in doc.cells if c.review is not None]))
    signed = [(c.root, c.signoff.by, c.signoff.at, c.signoff.comment, c.signoff.basis) for c in doc.cases.values()
              if c.signoff is not None]
    if signed:
        ops.append(("set_signoffs", signed))
    return ops


# ------------------------------------------------------------------------------------------ history


def _replay(doc: CaseDocument, rows: Sequence[tuple]) -> tuple[list[Step], list[Step]]:
    """The undo and redo stacks, rebuilt by replaying the event log as the document built them."""
    current: dict[str, Review | None] = {}
    undo: list[tuple[int, str, str, list]] = []  # (number, reviewer, at, [(path, old, new)])
    redo: list[tuple[int, str, str, list]] = []
    for (number, action), group in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
        group = list(group)
        if action == "review":
            changes = []
            for _n, _a, path, old_label, new_label, reviewer, at, model, version, mlabel, p_all, sha in group:
                old = current.get(path)
                if (old.label if old else None) != old_label:  # the log began mid-way (a document written whole)
                    old = Review(old_label, "", "", "") if is_review_label(old_label) else None
                new = None
                if is_review_label(new_label):
                    new = Review(new_label, reviewer or "", at or "", sha or "", model or "", version or "", mlabel,
                                 p_all)
                current[path] = new
                changes.append((path, old, new))
            first = group[0]
            undo.append((number, first[5] or "", first[6] or "", changes))
            redo.clear()
        elif action == "undo":
            if undo:
                s = undo.pop()
                redo.append(s)
                for path, old, _new in s[3]:
                    current[path] = old
        elif action == "redo":
            if redo:
                s = redo.pop()
                undo.append(s)
                for path, _old, new in s[3]:
                    current[path] = new
        elif action == "stale":
            for r in group:
                current[r[2]] = None

    def step(s) -> Step | None:
        number, reviewer, at, changes = s
        chs = tuple(ReviewChange(cell, old, new) for path, old, new in changes
                    if (cell := doc.cell(path)) is not None)
        if not chs:
            return None
        return Step(number, "review", chs, reviewer, at)

    return [x for x in map(step, undo) if x is not None], [x for x in map(step, redo) if x is not None]


# ------------------------------------------------------------------------------------------ changed files


def rehash_changed(doc: CaseDocument, keys: Iterable[str], store: CaseStore | None = None) -> list[Cell]:
    """Of these cells (from :meth:`CaseStore.changed_files`), those whose image content really changed
    (its sha256 is not the one classified or reviewed); pass them to ``doc.content_changed``.  With
    ``store``, the unchanged ones (only touched) get their new size/mtime stored, so they are not
    re-hashed next time.  Unreadable files are left alone (a classification says why)."""
    changed: list[Cell] = []
    touched: list[tuple[str, int | None, int | None]] = []
    for key in keys:
        cell = doc.cell(key)
        if cell is None:
            continue
        known = {r.sha256 for r in cell.results.values() if r.sha256}
        if cell.review is not None and cell.review.sha256:
            known.add(cell.review.sha256)
        if not known:
            continue
        try:
            sha = hashlib.sha256(read_regular_file(cell.path)).hexdigest()
        except (OSError, FileRefused):
            continue
        if any(s != sha for s in known):
            changed.append(cell)
        else:
            touched.append((key, *_stat(key)))
    if store is not None and touched:
        store._put([("stats", touched)])
    return changed


# ------------------------------------------------------------------------------------------ headless runs


class SignedOffChanged(StoreError):
    """A headless run would change the images of a signed-off case and no reason to reopen it was given."""

    def __init__(self, message: str):
        super().__init__(message, "signed_off")


class HeadlessRun:
    """A headless classification into a case file (``leukoscan-cli classify --store``): the scanned
    items are added to the stored document, the cells that already have a valid result of this model
    (same card, file unchanged since) are skipped, and results are stored ``chunk`` at a time as they
    arrive, so an overnight run can be opened in the app and reviewed without classifying again.

    ``todo``: the items to classify (``classify(run.todo, ...)``; each result's ``index`` is into it);
    :meth:`add` each result; :meth:`finish` stores the rest and closes the store (returns its write errors).
    """

    def __init__(self, store: CaseStore, facts: ModelFacts, items: Sequence[ScanItem],
                 threshold: float | None = None, opened: Iterable[tuple[str, bool]] = (), chunk: int = 64,
                 reopen: str | None = None, reopened_by: str = ""):
        self.store, self.facts, self.chunk = store, facts, max(1, chunk)
        self.doc = doc = store.load()
        touched = self._signed_off_changes(items, reopen)  # raises before anything is written
        store.attach(doc)
        for root, what in touched.items():
            doc.reopen(doc.cases[root], reopened_by or "leukoscan-cli", f"{reopen} ({what})")
        for path, is_dir in opened:
            doc.note_opened(path, is_dir)
        doc.add_items(items)
        doc.set_model(facts)
        if threshold is not None:
            doc.set_threshold(threshold)
        self.threshold = doc.threshold
        self.cells: list[Cell] = [doc.cell(str(it.path)) for it in items]
        keys = {c.key for c in self.cells}
        self.changed = doc.content_changed(rehash_changed(doc, [k for k in store.changed_files() if k in keys], store))
        todo = [i for i, c in enumerate(self.cells) if c.result is None or c.result.status != "ok"]
        self.todo: list[ScanItem] = [items[i] for i in todo]
        self._todo_cells = [self.cells[i] for i in todo]
        self.skipped = len(items) - len(todo)
        self._pending: list = []
        self._finished = False

    def _signed_off_changes(self, items: Sequence[ScanItem], reopen: str | None) -> dict[str, str]:
        """root -> what this run changes in that signed-off case (new images, changed images).  Such a run is
        refused (:class:`SignedOffChanged`) unless ``reopen`` gives a reason: then the cases are reopened with it
        before anything else is written (the app reopens them automatically, with a logged reason)."""
        doc = self.doc
        signed = {root for root, case in doc.cases.items() if case.signoff is not None}
        if not signed:
            return {}
        new = [it for it in items if str(it.root) in signed and doc.cell(str(it.path)) is None]
        keys = [str(it.path) for it in items if doc.cell(str(it.path)) is not None]
        changed = [c for c in rehash_changed(doc, [k for k in self.store.changed_files() if k in set(keys)])
                   if str(c.root) in signed]
        touched: dict[str, str] = {}
        for r in sorted({str(it.root) for it in new} | {str(c.root) for c in changed}):
            n_new, n_changed = sum(str(it.root) == r for it in new), sum(str(c.root) == r for c in changed)
            touched[r] = ", ".join(t for t in (f"{n_new} new image(s)" if n_new else "",
                                                f"{n_changed} changed image(s)" if n_changed else "") if t)
        if touched and not reopen:
            what = "; ".join(f"{doc.cases[r].label}: {w}" for r, w in touched.items())
            raise SignedOffChanged(f"signed-off case(s) would change ({what}); nothing was classified or written. "
                                   "Give --reopen REASON to reopen them (the reason is logged), or classify the new "
                                   "images as a separate case")
        return touched

    def add(self, result) -> None:
        self._pending.append((self._todo_cells[result.index], result))
        if len(self._pending) >= self.chunk:
            self._store_pending()

    def _store_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self.doc.add_results(self.facts, pending)

    def finish(self, timeout: float | None = 60.0) -> list[str]:
        """Store what is left, wait for the writes, close the case file; the write errors, if any."""
        if not self._finished:
            self._finished = True
            try:
                self._store_pending()
            finally:
                if not self.store.close(timeout):
                    self.store.errors.append(f"the case file {self.store.path} was not fully written in {timeout:g} s")
        return list(self.store.errors)
