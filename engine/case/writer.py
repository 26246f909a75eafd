"""How the case store writes: one SQL function per kind of operation (:data:`WRITES`), and the one writer thread
that owns the SQLite connection (:class:`StoreWriter`).

Batches of operations (:mod:`.ops`) are queued by the document's listener and committed in order, one transaction
per batch, so killing the process loses at most the batch in flight.  A batch that fails for a reason that may
pass (disk full, file locked) is kept and written again, first, with the next one: nothing is lost or reordered.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import audit, ledger
from . import ops as o
from .kinds import RecordAction, ReviewAction, SignOffAction
from .schema import connect, one_line
from .values import Review, utc_now

__all__ = ["MAX_BACKLOG", "WRITES", "StoreWriter", "file_stat", "write"]

MAX_BACKLOG = 10_000  # failed batches kept for a retry (then the oldest changes are reported lost)


def file_stat(path: str) -> tuple[int | None, int | None]:
    """(size, mtime_ns) of a file, (None, None) when it cannot be read: what tells a changed image."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None, None
    return st.st_size, st.st_mtime_ns


# ------------------------------------------------------------------------------------------ writes


def _meta(conn: sqlite3.Connection, op: o.SetMeta) -> None:
    if "model" in op.values:  # the current model is part of the record (the other meta rows are bookkeeping)
        row = conn.execute("SELECT value FROM meta WHERE key='model'").fetchone()
        if (row[0] if row else "") != op.values["model"]:
            ledger.log(conn, RecordAction.MODEL, target=op.values["model"])
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", list(op.values.items()))


def _cases(conn: sqlite3.Connection, op: o.PutCases) -> None:
    conn.executemany(
        "INSERT INTO cases(root, name, sample_id) VALUES(?, ?, ?) ON CONFLICT(root) DO UPDATE"
        " SET name=excluded.name, sample_id=excluded.sample_id",
        op.rows,
    )
    if op.rows:
        ledger.log(conn, RecordAction.CASES, ledger.rows_of(op.rows))


def _opened(conn: sqlite3.Connection, op: o.PutOpened) -> None:
    conn.executemany("INSERT OR REPLACE INTO opened(path, is_dir) VALUES(?, ?)", op.rows)


def _cells(conn: sqlite3.Connection, op: o.PutCells) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO cells(case_id, path, folder) SELECT id, ?, ? FROM cases WHERE root=?",
        [(p, f, r) for p, r, f in op.rows],
    )
    if op.rows:
        ledger.log(conn, RecordAction.CELLS, ledger.rows_of(op.rows))


def _models(conn: sqlite3.Connection, op: o.PutModels) -> None:
    verb = "INSERT OR REPLACE" if op.replace else "INSERT OR IGNORE"  # replace: the newest row of the name
    conn.executemany(
        f"{verb} INTO models(name, card_sha256, version, threshold, review_margin, member_names,"
        " provider, display_name) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
        op.rows,
    )
    if op.rows:
        ledger.log(conn, RecordAction.MODELS, {"replace": op.replace, "rows": ledger.rows_of(op.rows)})


def _results(conn: sqlite3.Connection, op: o.PutResults) -> None:
    at = utc_now()
    dumps = json.dumps
    rows = [
        (
            key,
            r.model,
            r.card_sha256,
            r.sha256,
            str(r.status),
            r.error,
            r.p_all,
            dumps(r.member_p) if r.member_p else "{}",
            int(r.members_disagree),
            r.qc,
        )
        for key, r in op.pairs
    ]
    conn.executemany(
        "INSERT OR REPLACE INTO results(cell_id, model, card_sha256, sha256, status, error, p_all, member_p,"
        " members_disagree, qc, classified_at) SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM cells WHERE path=?",
        [(*row[1:], at, row[0]) for row in rows],
    )
    if rows:
        ledger.log(conn, RecordAction.RESULTS, ledger.rows_of(rows))
    if op.stat:
        conn.executemany(
            "UPDATE cells SET size=?, mtime_ns=? WHERE path=?",
            [(*file_stat(key), key) for key in dict.fromkeys(k for k, _ in op.pairs)],
        )


def _stats(conn: sqlite3.Connection, op: o.PutStats) -> None:
    conn.executemany("UPDATE cells SET size=?, mtime_ns=? WHERE path=?", [(s, m, p) for p, s, m in op.rows])


def _threshold(conn: sqlite3.Connection, op: o.SetThreshold) -> None:
    if op.value is None:
        conn.execute("DELETE FROM thresholds WHERE model=?", (op.model,))
    else:
        conn.execute("INSERT OR REPLACE INTO thresholds(model, value) VALUES(?, ?)", (op.model, op.value))
    ledger.log(conn, RecordAction.THRESHOLD, op.value, target=op.model)


def _thresholds(conn: sqlite3.Connection, op: o.SetThresholds) -> None:
    conn.execute("DELETE FROM thresholds")
    conn.executemany("INSERT INTO thresholds(model, value) VALUES(?, ?)", list(op.values.items()))
    ledger.log(conn, RecordAction.THRESHOLDS, dict(op.values))


def _put_reviews(conn: sqlite3.Connection, rows: Sequence[tuple[str, Review]]) -> None:  # the live table only
    seen = audit.version_of(conn) >= audit.LATER_COLS["shown_in"]  # where the cell was seen: schema version 5 on
    cols = "cell_id, label, reviewer, reviewed_at, sha256, model, model_version, model_label, p_all" + (
        ", shown_in" if seen else ""
    )
    conn.executemany(
        f"INSERT OR REPLACE INTO reviews({cols}) SELECT id, ?, ?, ?, ?, ?, ?, ?, ?{', ?' if seen else ''}"
        " FROM cells WHERE path=?",
        [
            (
                rv.label,
                rv.reviewer,
                rv.reviewed_at,
                rv.sha256,
                rv.model,
                rv.model_version,
                rv.model_label,
                rv.p_all,
                *((rv.shown_in,) if seen else ()),
                key,
            )
            for key, rv in rows
        ],
    )


def _set_reviews(conn: sqlite3.Connection, op: o.SetReviews) -> None:  # a snapshot: logged as "import"
    live = audit.live_reviews(conn)
    changed = [(k, rv) for k, rv in op.rows if live.get(k) != audit.state_of(rv)]
    _put_reviews(conn, changed)
    for key, rv in changed:
        audit.import_row(conn, key, live.get(key), audit.state_of(rv))


def _log_reviews(conn: sqlite3.Connection, op: o.LogReviews) -> None:
    _put_reviews(conn, [(k, new) for k, _old, new in op.changes if new is not None])
    conn.executemany(
        "DELETE FROM reviews WHERE cell_id=(SELECT id FROM cells WHERE path=?)",
        [(k,) for k, _old, new in op.changes if new is None],
    )
    for key, old, new in op.changes:
        who, when = op.actor, op.at
        if op.action == ReviewAction.REVIEW and new is not None:
            who, when = new.reviewer, new.reviewed_at
        rv = new if new is not None else old  # what the row sets (for a clear: the one removed)
        cid = conn.execute("SELECT id FROM cells WHERE path=?", (key,)).fetchone()
        audit.append(
            conn,
            "review_events",
            {
                "step": op.number,
                "action": str(op.action),
                "cell_id": cid[0] if cid else None,
                "path": key,
                "old_label": old.label if old else None,
                "new_label": new.label if new else None,
                "reviewer": who,
                "at": when,
                "model": rv.model if rv else "",
                "model_version": rv.model_version if rv else "",
                "model_label": rv.model_label if rv else None,
                "p_all": rv.p_all if rv else None,
                "sha256": rv.sha256 if rv else "",
                "shown_in": rv.shown_in if rv else "",
            },
        )


def _stale(conn: sqlite3.Connection, op: o.SetStale) -> None:
    for key in op.keys:
        seen = audit.select_list(("shown_in",), audit.version_of(conn), "r.")
        row = conn.execute(
            f"SELECT r.cell_id, r.label, r.model, r.model_version, r.model_label, r.p_all, r.sha256, {seen}"
            " FROM reviews r JOIN cells c ON c.id = r.cell_id WHERE c.path=?",
            (key,),
        ).fetchone()
        if row is not None:  # only a review that was still current is set aside (and logged)
            cid, label, model, version, mlabel, p_all, sha, shown = row
            conn.execute("DELETE FROM reviews WHERE cell_id=?", (cid,))
            audit.append(
                conn,
                "review_events",
                {
                    "step": 0,
                    "action": str(ReviewAction.STALE),
                    "cell_id": cid,
                    "path": key,
                    "old_label": label,
                    "new_label": None,
                    "reviewer": "",
                    "at": op.at,
                    "model": model,
                    "model_version": version,
                    "model_label": mlabel,
                    "p_all": p_all,
                    "sha256": sha,
                    "shown_in": shown or "",
                },
            )
        if op.content_changed:  # its results were dropped: classified again
            conn.execute("DELETE FROM results WHERE cell_id=(SELECT id FROM cells WHERE path=?)", (key,))
    if op.content_changed and op.keys:
        ledger.log(conn, RecordAction.DROP_RESULTS, list(op.keys))


def _put_signoffs(conn: sqlite3.Connection, rows: Sequence[o.SignOffRow]) -> None:  # the live table only
    conn.executemany(
        "INSERT OR REPLACE INTO signoffs(case_id, signed_off_by, signed_off_at, comment, basis)"
        " SELECT id, ?, ?, ?, ? FROM cases WHERE root=?",
        [(b, a, c, basis, r) for r, b, a, c, basis in rows],
    )


def _set_signoffs(conn: sqlite3.Connection, op: o.SetSignOffs) -> None:  # a snapshot, logged
    live = audit.live_signoffs(conn)
    known = {r[0] for r in conn.execute("SELECT root FROM cases")}
    changed = [r for r in op.rows if r[0] in known and live.get(r[0]) != _signoff_state(r)]
    _put_signoffs(conn, changed)
    for r in changed:
        audit.signoff_row(conn, r[0], _signoff_state(r))


def _signoff_state(r: o.SignOffRow) -> audit.SignOffState:
    return (r[1] or "", r[2] or "", r[3] or "", r[4] or "")


def _log_signoff(conn: sqlite3.Connection, op: o.LogSignOff) -> None:
    if op.action == SignOffAction.SIGN_OFF:
        _put_signoffs(conn, [(op.root, op.by, op.at, op.text, op.basis)])
    else:
        conn.execute("DELETE FROM signoffs WHERE case_id=(SELECT id FROM cases WHERE root=?)", (op.root,))
    audit.append(
        conn,
        "case_events",
        {"case_root": op.root, "action": str(op.action), "by": op.by, "at": op.at, "text": op.text, "basis": op.basis},
    )


def _clear(conn: sqlite3.Connection, op: o.ClearCases) -> None:
    """The cases were closed in the window: a view closed.  Nothing is deleted (the record stays whole and is
    found again); the close is logged with who and when."""
    ledger.log(conn, RecordAction.CLOSE, by=op.by, at=op.at)
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('closed_at', ?)", (op.at,))


def _archive(conn: sqlite3.Connection, op: o.ArchiveCase) -> None:
    """A case archived: kept whole (never removed), marked as no longer worked on, with who, when and why."""
    if conn.execute("SELECT 1 FROM cases WHERE root=?", (op.root,)).fetchone() is None:
        raise ValueError(f"no case {op.root!r} in this case file")
    ledger.log(conn, RecordAction.ARCHIVE, op.reason, target=op.root, by=op.by, at=op.at)


#: Every operation type -> its SQL (tests/engine: every type of :data:`.ops.OP_TYPES` has an entry).
WRITES: dict[type[o.StoreOp], Callable[[sqlite3.Connection, Any], None]] = {
    o.SetMeta: _meta,
    o.PutCases: _cases,
    o.PutOpened: _opened,
    o.PutCells: _cells,
    o.PutModels: _models,
    o.PutResults: _results,
    o.PutStats: _stats,
    o.SetThreshold: _threshold,
    o.SetThresholds: _thresholds,
    o.SetReviews: _set_reviews,
    o.LogReviews: _log_reviews,
    o.SetStale: _stale,
    o.SetSignOffs: _set_signoffs,
    o.LogSignOff: _log_signoff,
    o.ClearCases: _clear,
    o.ArchiveCase: _archive,
}


def write(conn: sqlite3.Connection, batch: Sequence[o.StoreOp]) -> None:
    """Run one batch as one transaction (rolled back whole on any error).  KeyError for an operation type
    without an entry in :data:`WRITES`."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in batch:
            WRITES[type(op)](conn, op)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('saved', ?)", (utc_now(),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _retryable(exc: BaseException) -> bool:
    """A failure that may pass (disk full, file locked or read-only for a while), not a bug in the batch."""
    return isinstance(exc, (sqlite3.OperationalError, OSError))


# ------------------------------------------------------------------------------------------ the thread


class StoreWriter:
    """The one thread that writes a case file: :meth:`put` queues a batch (no I/O on the caller's thread),
    :meth:`flush` waits for what is queued, :meth:`stop` ends the thread.  ``report(message)`` is called (from
    the writer thread) with one line for each failed batch; a failed batch does not stop the writer."""

    def __init__(self, path: str | os.PathLike[str], report: Callable[[str], None]) -> None:
        self.path = path
        self._report = report
        self._queue: queue.Queue[list[o.StoreOp] | None] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="leukoscan-case-store", daemon=True)
        self._thread.start()

    def put(self, batch: list[o.StoreOp]) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put(batch)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed (or failed).  False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """End the thread after what is queued; False when it did not end in time."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        conn: sqlite3.Connection | None
        try:
            conn = connect(self.path)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn = None
            self._report(f"cannot save the case file {self.path}: {one_line(exc)}")
        backlog: list[list[o.StoreOp]] = []  # batches that failed for a reason that may pass (disk full, locked)
        try:
            while True:
                batch = self._queue.get()
                try:
                    if conn is None:
                        raise sqlite3.OperationalError("the case file could not be opened for writing")
                    while backlog:  # in order: an earlier failed batch first, so nothing is lost or reordered
                        write(conn, backlog[0])
                        backlog.pop(0)
                    if batch is not None:
                        write(conn, batch)
                except Exception as exc:
                    self._report(f"cannot save to the case file {self.path}: {one_line(exc)}")
                    if batch is not None and (backlog or _retryable(exc)) and len(backlog) < MAX_BACKLOG:
                        backlog.append(batch)  # written again with the next change
                finally:
                    if batch is not None:
                        with self._cond:
                            self._pending -= 1
                            self._cond.notify_all()
                if batch is None:
                    return
        finally:
            if conn is not None:
                conn.close()
