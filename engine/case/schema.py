"""The case file's schema, its migrations and how a file is checked and opened (:mod:`.store` uses them).

Schema version 5 (``PRAGMA user_version`` = the ``meta`` row ``schema_version``)::

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
        :attr:`.store.CaseStore.problem`, and by :meth:`.store.CaseStore.verify` before every export).
    record_events (version 4): the record's other numbers in the same chain (:mod:`.ledger`).
    reviews.shown_in TEXT NOT NULL DEFAULT '', review_events.shown_in TEXT                           (version 5)
        where the person saw the cell before the review (walk | preview | gallery page; "" = not recorded);
        in the chain (:data:`.audit.LATER_COLS`: hashed when not NULL, so rows written before version 5 keep
        their hash) and in the live-reviews check

Versions: :data:`MIGRATIONS` [i] migrates version i to i + 1 (0 = an empty file), each in one
transaction.  A file that is not SQLite, is damaged (``PRAGMA quick_check``), or comes from a newer
LeukoScan raises :class:`StoreError`; :func:`move_aside` renames such a file out of the way (never deletes).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..domain.store_files import SQLITE_FILES
from . import audit
from .kinds import StoreErrorKind
from .values import utc_now

__all__ = [
    "MIGRATIONS",
    "SQLITE_MAGIC",
    "StoreError",
    "check_and_migrate",
    "connect",
    "connect_read_only",
    "move_aside",
    "one_line",
    "schema_version",
]

SQLITE_MAGIC = b"SQLite format 3\x00"

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


_V3_LOGS = ("review_events", "case_events")
_V3 = tuple(
    [
        f"ALTER TABLE {t} ADD COLUMN {c}"
        for t in _V3_LOGS
        for c in ("seq INTEGER", "prev_hash TEXT", "hash TEXT", "recorded_at TEXT", "recorded_by TEXT")
    ]
    + [f"CREATE INDEX {t}_seq ON {t}(seq)" for t in _V3_LOGS]
    + [
        f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} WHEN EXISTS(SELECT 1 FROM {t} WHERE id = NEW.id)"
        f" BEGIN SELECT RAISE(ABORT, 'the {what} log is append-only: that row exists'); END"
        for t, what in (("review_events", "review"), ("case_events", "sign-off"))
    ]
)


def _migrate_v3(conn: sqlite3.Connection) -> None:
    """Version 3: the tamper-evident history.  Rows written before get hashed as they are (in id order,
    review events first), then an ``upgrade`` marker and whatever makes the history explain the live
    reviews and sign-offs (:func:`.audit.reconcile`)."""
    for stmt in _V3:
        conn.execute(stmt)
    legacy = any(
        conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
        for t in ("review_events", "case_events", "reviews", "signoffs")
    )
    if not legacy:
        return
    triggers = {
        t: conn.execute(
            "SELECT sql FROM sqlite_master WHERE type='trigger' AND name=?", (f"{t}_no_update",)
        ).fetchone()[0]
        for t in _V3_LOGS
    }
    for t in _V3_LOGS:  # inside the migration's transaction: put back before it commits
        conn.execute(f"DROP TRIGGER {t}_no_update")
    conn.execute("PRAGMA user_version=3")  # (in the same transaction) audit.append writes chained rows
    audit.chain_unchained(conn)
    for sql in triggers.values():
        conn.execute(sql)
    row = conn.execute("SELECT value FROM meta WHERE key='history_from'").fetchone()
    audit.reconcile(conn, int(row[0] or 0) if row else 0)


_V4 = (
    "CREATE TABLE record_events(id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL,"
    " target TEXT NOT NULL DEFAULT '', data TEXT NOT NULL DEFAULT '', by TEXT NOT NULL DEFAULT '', at TEXT NOT NULL,"
    " recorded_at TEXT, recorded_by TEXT, seq INTEGER, prev_hash TEXT, hash TEXT)",
    "CREATE INDEX record_events_seq ON record_events(seq)",
    "CREATE INDEX record_events_action ON record_events(action)",
    "CREATE TRIGGER record_events_no_update BEFORE UPDATE ON record_events"
    " BEGIN SELECT RAISE(ABORT, 'the record log is append-only'); END",
    "CREATE TRIGGER record_events_no_delete BEFORE DELETE ON record_events"
    " BEGIN SELECT RAISE(ABORT, 'the record log is append-only'); END",
    "CREATE TRIGGER record_events_no_replace BEFORE INSERT ON record_events"
    " WHEN EXISTS(SELECT 1 FROM record_events WHERE id = NEW.id)"
    " BEGIN SELECT RAISE(ABORT, 'the record log is append-only: that row exists'); END",
)


def _migrate_v4(conn: sqlite3.Connection) -> None:
    """Version 4: the record's numbers in the chain (:mod:`.ledger`): cases and sample ids, cells, models,
    results, thresholds and the current model are logged as they are written; an existing record is logged
    whole once (a ``state`` row), so the chain vouches for it from the upgrade on."""
    from . import ledger

    for stmt in _V4:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version=4")  # (in the same transaction) ledger.log writes from version 4 on
    ledger.log_state(conn, "LeukoScan (upgrade)")


_V5 = (
    "ALTER TABLE reviews ADD COLUMN shown_in TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE review_events ADD COLUMN shown_in TEXT",  # NULL in the rows before: their hashes hold
)


def _migrate_v5(conn: sqlite3.Connection) -> None:
    """Version 5: where a person saw a cell before its review (``shown_in``: walk | preview | gallery page; ""
    = not recorded), on the live review and in its history row (:data:`.audit.LATER_COLS`)."""
    for stmt in _V5:
        conn.execute(stmt)


#: The exact text of every trigger that keeps a log append-only (:func:`.record_check.verify` compares them: a trigger
#: recreated with another text, e.g. ``WHEN 0``, is a broken record).
TRIGGER_SQL: dict[str, str] = {
    stmt.split()[2]: stmt for stmt in (*_V1, *_V2, *_V3, *_V4) if stmt.startswith("CREATE TRIGGER")
}

#: ``MIGRATIONS[i](conn)`` turns a version-i file into version i + 1 (inside a transaction the caller
#: commits, together with the new ``user_version``).  The current version is ``len(MIGRATIONS)``;
#: a new version is one more entry here.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migrate_v1,
    _migrate_v2,
    _migrate_v3,
    _migrate_v4,
    _migrate_v5,
]


def schema_version() -> int:
    """The schema version this LeukoScan writes (the number of migrations it knows)."""
    return len(MIGRATIONS)


class StoreError(Exception):
    """The case file cannot be used; ``str()`` is a one-line reason.  ``kind``: a
    :class:`~engine.domain.kinds.StoreErrorKind` (``kind.movable``: worth :func:`move_aside`)."""

    def __init__(self, message: str, kind: StoreErrorKind | str = StoreErrorKind.DAMAGED):
        super().__init__(message)
        self.kind = StoreErrorKind(kind)  # (the stored word read back is a member too; an unknown one is a ValueError)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def move_aside(path: str | Path) -> Path:
    """Rename an unusable case file (and its ``-wal``/``-shm``) to ``<name>.corrupt`` (``.corrupt-2``,
    ... when taken) and return the new path.  Nothing is deleted."""
    path = Path(path)
    n = 1
    while True:
        target = path.with_name(path.name + (".corrupt" if n == 1 else f".corrupt-{n}"))
        if not any(os.path.lexists(f"{target}{s}") for s in ("", *SQLITE_FILES)):
            break
        n += 1
    for s in ("", *SQLITE_FILES):
        src = f"{path}{s}"
        if os.path.lexists(src):
            os.rename(src, f"{target}{s}")
    return target


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-write connection (autocommit: every write is an explicit transaction)."""
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write, not even the WAL files (for reading commands)."""
    from urllib.parse import quote

    uri = "file:" + quote(str(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:  # read-only media: no -shm can be made beside a WAL file
        conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    return conn


def check_and_migrate(conn: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
    """Refuse a file that is not a current-or-older LeukoScan case file (:class:`StoreError`); migrate an older one
    (each version in its own transaction) and fill in missing ``meta`` rows.  Read-only: check only."""
    known = schema_version()
    version = conn.execute("PRAGMA user_version").fetchone()[0]  # raises on a file that is not a database
    if version > known:
        raise StoreError(
            f"{path} was written by a newer LeukoScan (case file version {version}; this one "
            f"reads up to {known}); open it with that version",
            StoreErrorKind.NEWER,
        )
    check = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    if check != ["ok"]:
        raise StoreError(f"{path} is damaged ({check[0] if check else 'quick_check failed'})", StoreErrorKind.DAMAGED)
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise StoreError(f"{path} is an SQLite database but not a LeukoScan case file", StoreErrorKind.NOT_SQLITE)
    if version > 0:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None or str(row[0]) != str(version):
            raise StoreError(
                f"{path} is not a consistent LeukoScan case file (schema version "
                f"{row[0] if row else 'missing'} in meta, {version} in the header)",
                StoreErrorKind.DAMAGED,
            )
    if read_only:
        if version < known:
            raise StoreError(
                f"{path} was written by an older LeukoScan (case file version {version}); open it "
                "once with write access to upgrade it",
                StoreErrorKind.IO,
            )
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
            raise StoreError(
                f"{path}: upgrading the case file to version {v + 1} failed "
                f"({one_line(exc)}); it was left at version {v}",
                StoreErrorKind.IO,
            ) from None
    now = utc_now()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)",
        [
            ("session_id", os.urandom(6).hex()),
            ("started", now),
            ("saved", now),
            ("app_version", __version__),
            ("model", ""),
            ("exported_at", ""),
            ("unexported", "0"),
            ("history_from", "0"),
        ],
    )
    conn.execute("COMMIT")
