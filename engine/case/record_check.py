"""The record check: is a case file's history intact, and is its live state the state the history leads to?

It stands above the pieces it checks, the hash chain (:mod:`.audit`), the ledger of the record's numbers
(:mod:`.ledger`) and the triggers that keep the logs append-only (:data:`.schema.TRIGGER_SQL`), so none of them
imports another to be checked (they made an import cycle when the check lived in :mod:`.audit`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from . import ledger
from .audit import (
    CHAIN_COLS,
    GENESIS,
    TRIGGERS,
    Problem,
    columns,
    derived_reviews,
    derived_signoffs,
    live_reviews,
    live_signoffs,
    markers,
    row_hash,
    tables,
    version_of,
)
from .schema import TRIGGER_SQL

__all__ = ["Problem", "verify"]


def verify(conn: sqlite3.Connection, triggers: Mapping[str, str] | None = None) -> Problem | None:
    """None when the record is intact; else the first broken row and why.  Read-only.  ``triggers``: name ->
    the exact ``CREATE TRIGGER`` text each must have (:data:`.schema.TRIGGER_SQL`; one recreated with another
    text, e.g. ``WHEN 0``, no longer guards anything)."""
    logs = tables(conn)
    problem = (
        _triggers(conn, logs, TRIGGER_SQL if triggers is None else triggers) or _chain(conn, logs) or _live_state(conn)
    )
    if problem is None and "record_events" in logs:
        return ledger.check(conn)
    return problem


def _triggers(conn: sqlite3.Connection, logs: tuple[str, ...], triggers: Mapping[str, str]) -> Problem | None:
    """Every append-only trigger of the logs there is, with its exact text."""
    have = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger'")}
    for t in TRIGGERS:
        if t.rsplit("_no_", 1)[0] not in logs:
            continue
        if t not in have:
            return Problem(f"trigger {t}", "missing: the history could be rewritten without a trace")
        if t in triggers and " ".join(str(have[t]).split()) != " ".join(triggers[t].split()):
            return Problem(f"trigger {t}", "was changed: it no longer keeps the history append-only")
    return None


def _chain(conn: sqlite3.Connection, logs: tuple[str, ...]) -> Problem | None:
    """The hash chain over the logs: every row in it, in order, each following the one before, each its hash."""
    version = version_of(conn)
    rows = []
    for t in logs:
        content = columns(t, version)
        for r in conn.execute(f"SELECT {', '.join(('id', *content, *CHAIN_COLS))} FROM {t} ORDER BY id"):
            n = len(content)
            rows.append((t, r[0], dict(zip(content, r[1 : 1 + n])), *r[1 + n :]))
    last_seq = {t: 0 for t in logs}
    for t, rid, _v, seq, _p, _h in rows:  # per table: ids and chain order agree
        if seq is None or not isinstance(seq, int):
            return Problem(f"{t} row {rid}", "has no place in the hash chain (added outside LeukoScan)")
        if seq <= last_seq[t]:
            return Problem(f"{t} row {rid}", f"is out of order (chain #{seq} after #{last_seq[t]})")
        last_seq[t] = seq
    prev = GENESIS
    for i, (t, rid, values, seq, p, h) in enumerate(sorted(rows, key=lambda r: r[3]), start=1):
        where = f"{t} row {rid} (chain #{seq})"
        if seq != i:
            return Problem(f"{t} row {rid}", f"chain #{i} is missing (a row was deleted) or #{seq} duplicated")
        if p != prev:
            return Problem(where, "does not follow the row before it (a row before it was changed or removed)")
        if h != row_hash(t, rid, seq, values, p):
            return Problem(where, "its content does not match its hash (changed after it was written)")
        prev = h
    return None


def _live_state(conn: sqlite3.Connection) -> Problem | None:
    """The live reviews and sign-offs are the ones the history leads to (and ``history_from`` is where it starts)."""
    start_id = markers(conn)[0]
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key='history_from'").fetchall())
    if str(meta.get("history_from", "0") or "0") != str(start_id):
        return Problem("meta history_from", f"is {meta.get('history_from')!r}, the history says {start_id}")
    derived, live = derived_reviews(conn, start_id), live_reviews(conn)
    for path, rv in live.items():
        if derived.get(path) != rv:
            return Problem(f"reviews ({path})", _differs("review", derived.get(path), rv))
    for path in conn.execute("SELECT path FROM cells").fetchall():
        if derived.get(path[0]) is not None and path[0] not in live:
            return Problem(f"reviews ({path[0]})", _differs("review", derived[path[0]], None))
    dso, lso = derived_signoffs(conn), live_signoffs(conn)
    for (root,) in conn.execute("SELECT root FROM cases"):
        if dso.get(root) != lso.get(root):
            return Problem(f"signoffs ({root})", _differs("sign-off", dso.get(root), lso.get(root)))
    return None


def _differs(what: str, history: tuple[Any, ...] | None, live: tuple[Any, ...] | None) -> str:
    where = what == "review" and history is not None and live is not None and history[:8] == live[:8]

    def say(v: tuple[Any, ...] | None) -> str:
        if v is None:
            return "none"
        if what != "review":
            return f"by {v[0]} at {v[1]}"
        seen = (f", seen in the {v[8]}" if v[8] else ", where it was seen not recorded") if where else ""
        return f"{v[0]} by {v[1]} at {v[2]}{seen}"

    return f"the live {what} ({say(live)}) is not the one the history leads to ({say(history)})"
