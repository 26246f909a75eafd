"""The record's numbers in the hash chain (schema version 4): ``record_events``.

Reviews and sign-offs have their own logs (:mod:`.audit`).  Everything else a report rests on is written to
its live table *and*, in the same transaction, to ``record_events`` (chained like the other logs): the cases
and their sample ids, the cells (which images a case holds), the models' facts, the results, the thresholds
and the current model.  :func:`check` replays the log (:func:`derived`) and compares it with the live tables
(:func:`live`), so an ``UPDATE results SET p_all=...``, an ``INSERT INTO thresholds``, an ``UPDATE cases SET
sample_id=...`` or a ``DELETE`` of any of those rows breaks the record.  Not covered (not in any report):
``cells.size``/``mtime_ns`` (a cache that says which images to hash again), ``results.classified_at``,
``opened`` and the other ``meta`` rows.

Two more kinds of row change nothing live: ``close`` (the cases were closed in the window: closing only
closes the view, every row stays) and ``archive`` (a case is kept whole and marked as no longer worked on).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import audit
from .kinds import RecordAction as RA
from .values import utc_now

__all__ = ["State", "archived", "check", "derived", "live", "log", "log_state"]

Row = tuple[Any, ...]


@dataclass
class State:
    """What the record holds, as the check compares it."""

    cases: dict[str, Row] = field(default_factory=dict)  # root -> (name, sample_id)
    cells: dict[str, Row] = field(default_factory=dict)  # path -> (root, folder)
    models: dict[Row, Row] = field(default_factory=dict)  # (name, card_sha256) -> the other columns
    results: dict[Row, Row] = field(default_factory=dict)  # (path, model) -> RESULT columns
    thresholds: dict[str, float] = field(default_factory=dict)  # model -> value
    model: str = ""  # meta 'model'


#: The ``results`` columns the record covers, after (path, model).
RESULT = ("card_sha256", "sha256", "status", "error", "p_all", "member_p", "members_disagree", "qc")
MODEL = ("version", "threshold", "review_margin", "member_names", "provider", "display_name")


def log(
    conn: sqlite3.Connection, action: RA, data: Any = None, target: str = "", by: str = "", at: str | None = None
) -> int:
    """Append one ``record_events`` row (inside the caller's transaction); returns its id.  No-op (0) on a file
    not yet at version 4 (a migration of an older one in progress)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] < 4:
        return 0
    text = "" if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return audit.append(
        conn,
        "record_events",
        {"action": str(action), "target": target, "data": text, "by": by or "", "at": at or utc_now()},
    )


def log_state(conn: sqlite3.Connection, by: str) -> None:
    """A ``state`` row holding the whole live record (the upgrade of a version-3 file); nothing when it is empty."""
    s = live(conn)
    if not (s.cases or s.cells or s.models or s.results or s.thresholds or s.model):
        return
    log(
        conn,
        RA.STATE,
        {
            "cases": [[r, *v] for r, v in s.cases.items()],
            "cells": [[p, *v] for p, v in s.cells.items()],
            "models": [[*k, *v] for k, v in s.models.items()],
            "results": [[*k, *v] for k, v in s.results.items()],
            "thresholds": s.thresholds,
            "model": s.model,
        },
        by=by,
    )


# ------------------------------------------------------------------------------------------ the two sides


def live(conn: sqlite3.Connection) -> State:
    s = State()
    s.cases = {r: (n, sid or "") for r, n, sid in conn.execute("SELECT root, name, sample_id FROM cases")}
    s.cells = {
        p: (r, f)
        for p, r, f in conn.execute(
            "SELECT c.path, k.root, c.folder FROM cells c LEFT JOIN cases k ON k.id = c.case_id"
        )
    }
    s.models = {
        (r[0], r[1]): tuple(r[2:]) for r in conn.execute(f"SELECT name, card_sha256, {', '.join(MODEL)} FROM models")
    }
    s.results = {
        (r[0], r[1]): tuple(r[2:])
        for r in conn.execute(
            f"SELECT c.path, r.model, {', '.join('r.' + c for c in RESULT)} FROM results r"
            " LEFT JOIN cells c ON c.id = r.cell_id"
        )
    }
    s.thresholds = {m: float(v) for m, v in conn.execute("SELECT model, value FROM thresholds")}
    row = conn.execute("SELECT value FROM meta WHERE key='model'").fetchone()
    s.model = (row[0] if row else "") or ""
    return s


def _rows(data: Any) -> list[list[Any]]:
    return [list(r) for r in (data or [])]


def _state(s: State, target: str, data: Any) -> None:
    s.cases = {r[0]: tuple(r[1:]) for r in _rows(data.get("cases"))}
    s.cells = {r[0]: tuple(r[1:]) for r in _rows(data.get("cells"))}
    s.models = {(r[0], r[1]): tuple(r[2:]) for r in _rows(data.get("models"))}
    s.results = {(r[0], r[1]): tuple(r[2:]) for r in _rows(data.get("results"))}
    s.thresholds = {m: float(v) for m, v in (data.get("thresholds") or {}).items()}
    s.model = data.get("model") or ""


def _cases(s: State, target: str, data: Any) -> None:
    for root, name, sid in _rows(data):
        s.cases[root] = (name, sid or "")


def _cells(s: State, target: str, data: Any) -> None:
    for path, root, folder in _rows(data):
        if path not in s.cells and root in s.cases:  # INSERT OR IGNORE ... FROM cases WHERE root=?
            s.cells[path] = (root, folder)


def _models(s: State, target: str, data: Any) -> None:
    for r in _rows(data.get("rows")):
        key, value = (r[0], r[1]), tuple(r[2:])
        if data.get("replace") or key not in s.models:
            s.models[key] = value


def _results(s: State, target: str, data: Any) -> None:
    for r in _rows(data):
        if r[0] in s.cells:  # INSERT OR REPLACE ... FROM cells WHERE path=?
            s.results[(r[0], r[1])] = tuple(r[2:])


def _drop_results(s: State, target: str, data: Any) -> None:
    gone = set(data or [])
    s.results = {k: v for k, v in s.results.items() if k[0] not in gone}


def _threshold(s: State, target: str, data: Any) -> None:
    if data is None:
        s.thresholds.pop(target, None)
    else:
        s.thresholds[target] = float(data)


def _thresholds(s: State, target: str, data: Any) -> None:
    s.thresholds = {m: float(v) for m, v in (data or {}).items()}


def _model(s: State, target: str, data: Any) -> None:
    s.model = target


#: What each action of ``record_events`` does to the record, as the write it stands for did to the tables (the
#: markers, CLOSE and ARCHIVE, change nothing the record check compares).
_APPLY: dict[str, Callable[[State, str, Any], None]] = {
    RA.STATE: _state,
    RA.CASES: _cases,
    RA.CELLS: _cells,
    RA.MODELS: _models,
    RA.RESULTS: _results,
    RA.DROP_RESULTS: _drop_results,
    RA.THRESHOLD: _threshold,
    RA.THRESHOLDS: _thresholds,
    RA.MODEL: _model,
}


def _apply(s: State, action: str, target: str, data: Any) -> None:
    step = _APPLY.get(action)
    if step is not None:
        step(s, target, data)


def derived(conn: sqlite3.Connection) -> State:
    """The record ``record_events`` leads to (replayed in chain order)."""
    s = State()
    for action, target, data in conn.execute("SELECT action, target, data FROM record_events ORDER BY seq, id"):
        _apply(s, action, target or "", json.loads(data) if data else None)
    return s


def archived(conn: sqlite3.Connection) -> dict[str, tuple[str, str, str]]:
    """root -> (by, at, reason) of every archived case."""
    return {
        t: (by or "", at or "", json.loads(d) if d else "")
        for t, by, at, d in conn.execute(
            "SELECT target, by, at, data FROM record_events WHERE action=? ORDER BY seq", (str(RA.ARCHIVE),)
        )
    }


# ------------------------------------------------------------------------------------------ the check

_WHAT = (
    ("cases", "case", ("name", "sample id")),
    ("cells", "cell", ("case", "folder")),
    ("models", "model", MODEL),
    ("results", "result", RESULT),
)


def _say(names: Sequence[str], v: Row | None) -> str:
    if v is None:
        return "none"
    return ", ".join(f"{n} {x!r}" for n, x in zip(names, v))


def _first(
    table: str, what: str, names: Sequence[str], hist: Mapping[Any, Row], now: Mapping[Any, Row]
) -> audit.Problem | None:
    for key in list(now) + [k for k in hist if k not in now]:
        h, n = hist.get(key), now.get(key)
        if h == n:
            continue
        where = f"{table} ({', '.join(map(str, key)) if isinstance(key, tuple) else key})"
        if n is None:
            return audit.Problem(where, "removed: the history has it (rows were deleted outside LeukoScan)")
        if h is None:
            return audit.Problem(where, f"the live {what} ({_say(names, n)}) is not in the history (added outside it)")
        diff = [i for i in range(len(names)) if h[i] != n[i]]
        shown = [names[i] for i in diff]
        return audit.Problem(
            where,
            f"the live {what} ({_say(shown, tuple(n[i] for i in diff))}) is not the one the history leads to "
            f"({_say(shown, tuple(h[i] for i in diff))})",
        )
    return None


def check(conn: sqlite3.Connection) -> audit.Problem | None:
    """None when the live cases, cells, models, results, thresholds and current model are what
    ``record_events`` leads to; else the first difference."""
    hist, now = derived(conn), live(conn)
    for table, what, names in _WHAT:
        p = _first(table, what, names, getattr(hist, table), getattr(now, table))
        if p is not None:
            return p
    th = {m: (v,) for m, v in hist.thresholds.items()}
    tn = {m: (v,) for m, v in now.thresholds.items()}
    p = _first("thresholds", "threshold", ("value",), th, tn)
    if p is not None:
        return p
    if hist.model != now.model:
        return audit.Problem("meta model", f"is {now.model!r}, the history says {hist.model!r}")
    return None


def rows_of(pairs: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """JSON-ready rows (tuples become lists)."""
    return [list(r) for r in pairs]
