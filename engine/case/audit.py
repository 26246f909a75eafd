"""The case store's tamper-evident history: one SHA-256 hash chain over ``review_events`` and
``case_events``, and the check of the live ``reviews`` / ``signoffs`` tables against it.

One chain for both logs: every row has ``seq`` (1, 2, 3 ... across both tables, in the order written),
``prev_hash`` (the ``hash`` of row ``seq - 1``; 64 zeros for the first) and ``hash``::

    hash = sha256(json.dumps([table, id, seq, <the row's content columns in schema order>, prev_hash],
                             ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()

where a column added in a later schema version (:data:`LATER_COLS`: ``review_events.shown_in``, version 5) is
among the content columns only when it is not NULL, so the rows written before it keep their hash; changing,
deleting, inserting or re-ordering any row breaks the chain at that row (a REPLACE is
refused by a trigger, an UPDATE or DELETE by the older triggers).  ``recorded_at`` / ``recorded_by``
are the engine's: its clock and the operating-system account when the row was written, whatever the
caller said in ``at`` / ``reviewer`` / ``by``.

The live state must be the state the history leads to (:func:`derived_reviews`, :func:`derived_signoffs`):
a ``reviews`` or ``signoffs`` row the history does not explain (or a review the history has that the
table lost) breaks the record.  Markers in ``review_events`` (``path`` ''):

* ``closed``: the cases were closed (everything live was cleared); replay restarts after it;
* ``upgrade``: written once when a version-2 file was upgraded; ``step`` = the ``history_from`` it had,
  ``path`` = JSON list of the roots closed before (their older sign-off rows no longer apply);
* ``import`` (a real ``path``): a review written whole (a document that did not come from this store,
  or the live review found at the upgrade where the older history did not explain it).

The chain shows that the history was changed by anything but LeukoScan's own appends; it cannot stop
someone who rewrites the whole chain with a copy of this code.  A report carries the chain head
(:func:`head`), so a record rewritten after that report no longer matches it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import replay
from .kinds import ReviewAction, SignOffAction
from .rules import is_review_label
from .values import Review, utc_now

GENESIS = "0" * 64
TABLES = ("review_events", "case_events", "record_events")  # record_events: schema version 4 (:mod:`.ledger`)
REVIEW_COLS = (
    "step",
    "action",
    "cell_id",
    "path",
    "old_label",
    "new_label",
    "reviewer",
    "at",
    "model",
    "model_version",
    "model_label",
    "p_all",
    "sha256",
    "recorded_at",
    "recorded_by",
    "shown_in",
)
CASE_COLS = ("case_root", "action", "by", "at", "text", "basis", "recorded_at", "recorded_by")
RECORD_COLS = ("action", "target", "data", "by", "at", "recorded_at", "recorded_by")
COLS = {"review_events": REVIEW_COLS, "case_events": CASE_COLS, "record_events": RECORD_COLS}
CHAIN_COLS = ("seq", "prev_hash", "hash")
#: content columns added by a later schema version -> that version: absent (not read, not written) in an older file,
#: hashed only when not NULL (a row written before the column existed keeps its hash; one written since holds "" or
#: a value, so setting it to anything else, NULL included, breaks the row's hash)
LATER_COLS = {"shown_in": 5}
#: the triggers that keep the logs append-only (a missing one is a broken record)
TRIGGERS = tuple(f"{t}_no_{w}" for t in TABLES for w in ("update", "delete", "replace"))


class RecordRefused(ValueError):
    """A history row LeukoScan will not write (e.g. a name with control characters)."""


# ------------------------------------------------------------------------------------------ names


def check_name(name: str, what: str = "reviewer name") -> str:
    """``name`` with runs of spaces collapsed; :class:`RecordRefused` when it holds a control character
    (a line break, tab, escape, NUL, a bidi override ...), which could forge lines in a report."""
    name = str(name or "")
    bad = [ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise RecordRefused(
            f"the {what} {name.encode('unicode_escape').decode('ascii')!r} contains control "
            f"characters ({', '.join(sorted({f'U+{ord(c):04X}' for c in bad}))}); "
            "use letters, digits, spaces and punctuation only"
        )
    return " ".join(name.split())


@functools.lru_cache(maxsize=1)
def os_user() -> str:
    """The operating-system account running LeukoScan (what the engine records as ``recorded_by``): the login
    name from the environment, else the local ``/etc/passwd`` entry of this uid, else ``uid N``.  Never a name
    service lookup (``getpass``'s ``pwd`` fallback asks NSS: nscd, LDAP, the network), since the record writes it
    on every change."""
    for key in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(key):
            return os.environ[key]
    if not hasattr(os, "getuid"):  # pragma: no cover - Windows sets USERNAME
        return "unknown"
    uid = os.getuid()
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(":")
                if len(parts) > 2 and parts[2] == str(uid):
                    return parts[0]
    except OSError:
        pass
    return f"uid {uid}"


def reviewer_name(settings_name: str | None = None) -> str:
    """The reviewer the engine records: the settings' reviewer name when one is set, else the OS account;
    :class:`RecordRefused` for a name with control characters."""
    name = check_name(settings_name or "")
    return name or check_name(os_user(), "account name")


# ------------------------------------------------------------------------------------------ chain


def columns(table: str, version: int) -> tuple[str, ...]:
    """The content columns ``table`` has in a file of schema ``version``."""
    return tuple(c for c in COLS[table] if LATER_COLS.get(c, 0) <= version)


def select_list(cols: tuple[str, ...], version: int, prefix: str = "") -> str:
    """A SELECT list of ``cols`` on a file of schema ``version`` (a column it does not have yet reads NULL)."""
    return ", ".join(prefix + c if LATER_COLS.get(c, 0) <= version else "NULL" for c in cols)


def version_of(conn: sqlite3.Connection) -> int:
    """The file's schema version (``PRAGMA user_version``)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def row_hash(table: str, row_id: int, seq: int, values: Mapping[str, Any], prev: str) -> str:
    content = [
        table,
        row_id,
        seq,
        *(values.get(c) for c in COLS[table] if c not in LATER_COLS or values.get(c) is not None),
        prev,
    ]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


def tables(conn: sqlite3.Connection) -> tuple[str, ...]:
    """The chained logs this file has (record_events from version 4 on)."""
    return TABLES if version_of(conn) >= 4 else TABLES[:2]  # (cheap: every append asks)


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the last row of the chain; (0, GENESIS) for an empty history."""
    best = (0, GENESIS)
    for t in tables(conn):
        row = conn.execute(f"SELECT seq, hash FROM {t} WHERE seq = (SELECT max(seq) FROM {t})").fetchone()
        if row is not None and row[0] is not None and row[0] > best[0]:
            best = (int(row[0]), row[1] or "")
    return best


@dataclass(frozen=True)
class ChainRow:
    """One row of the chain as ``verify --report`` lists it."""

    seq: int
    table: str
    id: int
    hash: str
    action: str
    who: str
    at: str

    def describe(self) -> str:
        return f"#{self.seq} {self.table} row {self.id}: {self.action} by {self.who or '?'} at {self.at}"


def chain_rows(conn: sqlite3.Connection, after: int = 0) -> list[ChainRow]:
    """The chain's rows with ``seq`` > ``after``, in chain order."""
    who = {"review_events": "reviewer", "case_events": "by", "record_events": "by"}
    out = []
    for t in tables(conn):
        for seq, rid, h, action, name, at, rec_by in conn.execute(
            f"SELECT seq, id, hash, action, {who[t]}, at, recorded_by FROM {t} WHERE seq > ?", (after,)
        ):
            out.append(ChainRow(int(seq), t, int(rid), h or "", action or "", name or rec_by or "", at or ""))
    return sorted(out, key=lambda r: r.seq)


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name=?", (table,)).fetchone()
    top = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    return max(int(seq[0]) if seq else 0, int(top or 0)) + 1


def append(conn: sqlite3.Connection, table: str, values: Mapping[str, Any], recorded_by: str | None = None) -> int:
    """Append one row to ``table`` (inside the caller's transaction), chained; returns its id.  The
    names in it are checked (:func:`check_name`); ``recorded_at``/``recorded_by`` are the engine's."""
    values = dict(values)  # (also: the row as written, every column)
    for key, what in (("reviewer", "reviewer name"), ("by", "name")):
        if values.get(key):
            values[key] = _checked(values[key], what)
    version = version_of(conn)
    if version < 3:  # a file not yet upgraded (tests of older ones)
        cols = [c for c in COLS[table] if c in values and not c.startswith("recorded_") and c not in LATER_COLS]
        cur = conn.execute(
            f"INSERT INTO {table}({', '.join(cols)}) VALUES({', '.join('?' * len(cols))})", [values[c] for c in cols]
        )
        return int(cur.lastrowid or 0)
    values["recorded_at"] = utc_now()
    values["recorded_by"] = recorded_by or os_user()
    seq, prev = head(conn)
    row_id, seq = _next_id(conn, table), seq + 1
    values = {c: ("" if c in LATER_COLS and values.get(c) is None else values.get(c)) for c in columns(table, version)}
    h = row_hash(table, row_id, seq, values, prev)
    chained = ("id", *values, *CHAIN_COLS)
    conn.execute(
        f"INSERT INTO {table}({', '.join(chained)}) VALUES({', '.join('?' * len(chained))})",
        (row_id, *values.values(), seq, prev, h),
    )
    return row_id


def _checked(name: str, what: str) -> str:
    check_name(name, what)  # refuse control characters; keep the name as the document has it
    return name


def chain_unchained(conn: sqlite3.Connection) -> int:
    """Hash the rows written before the chain existed (the upgrade to version 3): every review event by
    id, then every sign-off event by id.  Returns how many.  Needs the UPDATE triggers dropped."""
    seq, prev = head(conn)
    n, version = 0, version_of(conn)
    for t in tables(conn):
        cols = columns(t, version)
        rows = conn.execute(f"SELECT id, {', '.join(cols)} FROM {t} WHERE seq IS NULL ORDER BY id").fetchall()
        for r in rows:
            seq += 1
            values = dict(zip(cols, r[1:]))
            h = row_hash(t, r[0], seq, values, prev)
            conn.execute(f"UPDATE {t} SET seq=?, prev_hash=?, hash=? WHERE id=?", (seq, prev, h, r[0]))
            prev, n = h, n + 1
    return n


# ------------------------------------------------------------------------------------------ live state

_REVIEW_FIELDS = (
    "label",
    "reviewer",
    "reviewed_at",
    "sha256",
    "model",
    "model_version",
    "model_label",
    "p_all",
    "shown_in",
)


#: A review as the record check compares it: (label, reviewer, reviewed_at, sha256, model, model_version,
#: model_label, p_all, shown_in), text fields "" for missing.
ReviewState = tuple[str, str, str, str, str, str, str, "float | None", str]
SignOffState = tuple[str, str, str, str]  # (by, at, comment, basis)


def review_state(
    label: Any,
    reviewer: Any,
    at: Any,
    sha: Any,
    model: Any,
    version: Any,
    mlabel: Any,
    p_all: Any,
    shown_in: Any = "",
) -> ReviewState | None:
    """The comparable form of a review from its column values (None: not a review label)."""
    if not is_review_label(label):
        return None
    return (
        label,
        reviewer or "",
        at or "",
        sha or "",
        model or "",
        version or "",
        mlabel or "",
        None if p_all is None else float(p_all),
        shown_in or "",
    )


def markers(conn: sqlite3.Connection) -> tuple[int, int, int, set[str]]:
    """(review replay starts after this id, sign-off replay starts after this seq, the upgrade's seq,
    the roots closed before the upgrade)."""
    start_id, start_seq, up_seq, closed_roots = 0, 0, 0, set[str]()
    for rid, seq, action, step, path in conn.execute(
        "SELECT id, seq, action, step, path FROM review_events WHERE action IN (?, ?) ORDER BY id",
        (str(ReviewAction.CLOSED), str(ReviewAction.UPGRADE)),
    ):
        if action == ReviewAction.CLOSED:
            start_id, start_seq = rid, seq or 0
        else:
            start_id, up_seq = max(start_id, int(step or 0)), seq or 0
            try:
                closed_roots = set(json.loads(path or "[]"))
            except ValueError:
                closed_roots = set()
    return start_id, start_seq, up_seq, closed_roots


def state_of(rv: Review) -> ReviewState | None:
    return review_state(
        rv.label,
        rv.reviewer,
        rv.reviewed_at,
        rv.sha256,
        rv.model,
        rv.model_version,
        rv.model_label,
        rv.p_all,
        rv.shown_in,
    )


def derived_reviews(conn: sqlite3.Connection, start_id: int | None = None) -> dict[str, ReviewState | None]:
    """path -> the review (label, reviewer, reviewed_at, sha256, model, model_version, model_label, p_all,
    shown_in) the history leads to, for every path it names (None: no review): :func:`.replay.replay` (the one the
    store restores the undo history with), from the last close on."""
    if start_id is None:
        start_id = markers(conn)[0]
    cols = select_list(replay.COLUMNS, version_of(conn))
    rows = conn.execute(f"SELECT {cols} FROM review_events WHERE id > ? ORDER BY id", (start_id,))
    return {path: None if rv is None else state_of(rv) for path, rv in replay.replay(rows).current.items()}


def derived_signoffs(conn: sqlite3.Connection) -> dict[str, SignOffState | None]:
    """root -> the sign-off (by, at, comment, basis) the history leads to (None: not signed off)."""
    _sid, start_seq, up_seq, closed_roots = markers(conn)
    state: dict[str, SignOffState | None] = {}
    for root, action, by, at, text, basis, seq in conn.execute(
        "SELECT case_root, action, by, at, text, basis, seq FROM case_events ORDER BY seq, id"
    ):
        if (seq or 0) < start_seq or ((seq or 0) < up_seq and root in closed_roots):
            continue
        state[root] = (by or "", at or "", text or "", basis or "") if action == SignOffAction.SIGN_OFF else None
    return state


def live_reviews(conn: sqlite3.Connection) -> dict[str, ReviewState | None]:
    cols = select_list(_REVIEW_FIELDS, version_of(conn), "r.")
    return {
        path: review_state(*rest)
        for path, *rest in conn.execute(f"SELECT c.path, {cols} FROM reviews r JOIN cells c ON c.id = r.cell_id")
    }


def live_signoffs(conn: sqlite3.Connection) -> dict[str, SignOffState]:
    return {
        root: (by or "", at or "", comment or "", basis or "")
        for root, by, at, comment, basis in conn.execute(
            "SELECT c.root, s.signed_off_by, s.signed_off_at, s.comment, s.basis FROM signoffs s"
            " JOIN cases c ON c.id = s.case_id"
        )
    }


# ------------------------------------------------------------------------------------------ verify


@dataclass(frozen=True)
class Problem:
    """The first thing that breaks the record: ``where`` (a table row, or a live table) and ``why``."""

    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


# ------------------------------------------------------------------------------------------ upgrade


def reconcile(conn: sqlite3.Connection, history_from: int) -> None:
    """After :func:`chain_unchained` (upgrade to version 3): the ``upgrade`` marker, then an ``import``
    row for every live review and a sign-off/reopen row for every live sign-off the older history does
    not explain, so the live state and the history agree from here on."""
    roots = {r[0] for r in conn.execute("SELECT root FROM cases")}
    closed = sorted({r[0] for r in conn.execute("SELECT DISTINCT case_root FROM case_events")} - roots)
    append(
        conn,
        "review_events",
        {"step": int(history_from), "action": str(ReviewAction.UPGRADE), "path": json.dumps(closed), "at": utc_now()},
        "LeukoScan (upgrade)",
    )
    derived, live = derived_reviews(conn), live_reviews(conn)
    for (path,) in conn.execute("SELECT path FROM cells ORDER BY id").fetchall():
        now, before = live.get(path), derived.get(path)
        if now != before:
            import_row(conn, path, before, now, "LeukoScan (upgrade)")
    dso, lso = derived_signoffs(conn), live_signoffs(conn)
    for root in sorted(roots):
        if dso.get(root) != lso.get(root):
            signoff_row(conn, root, lso.get(root), "LeukoScan (upgrade)")


def import_row(
    conn: sqlite3.Connection,
    path: str,
    old: ReviewState | None,
    new: ReviewState | None,
    recorded_by: str | None = None,
) -> None:
    """An ``import`` row: the review of ``path`` is ``new`` (written whole; ``old``: what the history had)."""
    rv = new if new is not None else old
    append(
        conn,
        "review_events",
        {
            "step": 0,
            "action": str(ReviewAction.IMPORT),
            "path": path,
            "cell_id": (conn.execute("SELECT id FROM cells WHERE path=?", (path,)).fetchone() or (None,))[0],
            "old_label": old[0] if old else None,
            "new_label": new[0] if new else None,
            "reviewer": new[1] if new else "",
            "at": new[2] if new else utc_now(),
            "sha256": rv[3] if rv else "",
            "model": rv[4] if rv else "",
            "model_version": rv[5] if rv else "",
            "model_label": (rv[6] or None) if rv else None,
            "p_all": rv[7] if rv else None,
            "shown_in": rv[8] if rv else "",
        },
        recorded_by,
    )


def signoff_row(conn: sqlite3.Connection, root: str, so: SignOffState | None, recorded_by: str | None = None) -> None:
    """A sign-off (``so`` = (by, at, comment, basis)) or, for None, a reopen that makes the history say so."""
    if so is not None:
        append(
            conn,
            "case_events",
            {
                "case_root": root,
                "action": str(SignOffAction.SIGN_OFF),
                "by": so[0],
                "at": so[1],
                "text": so[2],
                "basis": so[3],
            },
            recorded_by,
        )
    else:
        append(
            conn,
            "case_events",
            {
                "case_root": root,
                "action": str(SignOffAction.REOPEN),
                "by": "LeukoScan (automatic)",
                "at": utc_now(),
                "text": "no sign-off in the record",
                "basis": "",
            },
            recorded_by,
        )
