"""A case document rebuilt from a case file (:meth:`.store.CaseStore.load`): the rows read in one snapshot
(:func:`read_rows`), then the document built from them (:func:`document_of`) without classifying anything and
without an event going anywhere (nobody listens yet).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..pipeline import ScanItem
from . import audit, replay
from .cell import Cell
from .document import CaseDocument
from .kinds import STEP_ACTIONS, CellStatus
from .rules import is_review_label
from .values import Case, ModelFacts, Result, Review, SignOff

__all__ = ["StoredRows", "document_of", "read_rows"]

Rows = list[Any]


@dataclass(frozen=True)
class StoredRows:
    """Every row a document is built from, read in one transaction."""

    meta: dict[str, str]
    cases: Rows
    opened: Rows
    models: Rows
    thresholds: Rows
    cells: Rows
    results: Rows
    reviews: Rows
    events: Rows  # the review log after the last close marker (``history_from``)
    last_step: int
    signoffs: Rows


def read_rows(c: sqlite3.Connection) -> StoredRows:
    """The rows of a case file of any supported schema version (the caller holds one consistent snapshot)."""
    version = audit.version_of(c)
    meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
    seen = audit.select_list(("shown_in",), version)  # where the cell was seen (version 5 on)
    steps = tuple(map(str, STEP_ACTIONS))
    return StoredRows(
        meta=meta,
        cases=c.execute("SELECT id, root, name, sample_id FROM cases ORDER BY id").fetchall(),
        opened=c.execute("SELECT path, is_dir FROM opened ORDER BY rowid").fetchall(),
        models=c.execute(
            "SELECT name, card_sha256, version, threshold, review_margin, member_names,"
            " provider, display_name FROM models ORDER BY rowid"
        ).fetchall(),
        thresholds=c.execute("SELECT model, value FROM thresholds").fetchall(),
        cells=c.execute("SELECT id, case_id, path, folder, size, mtime_ns FROM cells ORDER BY id").fetchall(),
        results=c.execute(
            "SELECT cell_id, model, card_sha256, sha256, status, error, p_all, member_p,"
            " members_disagree, qc FROM results"
        ).fetchall(),
        reviews=c.execute(
            "SELECT cell_id, label, reviewer, reviewed_at, sha256, model, model_version,"
            f" model_label, p_all, {seen} FROM reviews"
        ).fetchall(),
        events=c.execute(
            f"SELECT {audit.select_list(replay.COLUMNS, version)} FROM review_events WHERE id > ? ORDER BY id",
            (int(meta.get("history_from") or 0),),
        ).fetchall(),
        last_step=c.execute("SELECT max(step) FROM review_events WHERE action IN (?, ?, ?)", steps).fetchone()[0] or 0,
        signoffs=c.execute("SELECT case_id, signed_off_by, signed_off_at, comment, basis FROM signoffs").fetchall(),
    )


def document_of(rows: StoredRows) -> CaseDocument:
    """The document the rows hold: cases, models, cells and their results, the current model (which decides every
    cell), the reviews, the export bookkeeping and the undo/redo history."""
    meta = rows.meta
    doc = CaseDocument(session_id=meta.get("session_id") or None)
    doc.started = meta.get("started") or doc.started
    roots = _cases(doc, rows)
    doc.opened = {p: bool(d) for p, d in rows.opened}
    _models(doc, rows)
    by_id = _cells(doc, rows, roots)
    _results(by_id, rows)
    model = meta.get("model") or None
    if model in doc.facts:
        doc.set_model(doc.facts[model])  # derives every cell's class and flag
    _reviews(by_id, rows)
    doc.exported_at = meta.get("exported_at") or ""
    doc.unexported = meta.get("unexported") == "1"
    undo, redo = replay.document_steps(doc, replay.replay(rows.events))
    doc.load_history(undo, redo, last_step=int(rows.last_step))
    return doc


def _cases(doc: CaseDocument, rows: StoredRows) -> dict[int, tuple[Case, Path]]:
    """case id -> (case, root), the cases and their sign-offs put into ``doc``."""
    roots: dict[int, tuple[Case, Path]] = {}
    for cid, root, name, sample_id in rows.cases:
        # a case is its root: two stored with one display name (two runs that loaded the file before
        # either wrote) stay two cases, the later one renamed as case_of_root would have named it
        case = Case(root, doc.unique_name(root, name), sample_id or "")
        doc.cases[root] = case
        roots[cid] = (case, Path(root))
    for cid, by, at, comment, basis in rows.signoffs:
        if cid in roots:
            roots[cid][0].signoff = SignOff(by, at, comment or "", basis or "")
    return roots


def _models(doc: CaseDocument, rows: StoredRows) -> None:
    for name, card, version, thr, margin, members, provider, display in rows.models:
        doc.facts[name] = ModelFacts(
            name,
            version or "",
            card,
            float(thr),
            float(margin),
            tuple(json.loads(members or "[]")),
            provider or "",
            display or name,
        )
    doc.thresholds = {m: float(v) for m, v in rows.thresholds}


def _cells(doc: CaseDocument, rows: StoredRows, roots: dict[int, tuple[Case, Path]]) -> dict[int, Cell]:
    """cell id -> the cell added to ``doc`` (with its stored size and mtime)."""
    items = [ScanItem(Path(path), roots[case_id][1], folder) for _cid, case_id, path, folder, _s, _m in rows.cells]
    cells = doc.add_items(items, loading=True)
    by_id: dict[int, Cell] = {}
    for cell, (cid, _case_id, _path, _folder, size, mtime) in zip(cells, rows.cells):
        cell.size, cell.mtime_ns = size, mtime
        by_id[cid] = cell
    return by_id


def _results(by_id: dict[int, Cell], rows: StoredRows) -> None:
    for cid, model, card, sha, status, error, p_all, member_p, disagree, qc in rows.results:
        known = by_id.get(cid)
        if known is not None:
            known.results[model] = Result(
                model,
                card or "",
                sha or "",
                CellStatus(status),
                error or "",
                p_all,
                json.loads(member_p) if member_p and member_p != "{}" else {},
                bool(disagree),
                qc or "",
            )


def _reviews(by_id: dict[int, Cell], rows: StoredRows) -> None:
    for cid, label, reviewer, at, sha, rmodel, rversion, rlabel, rp, shown in rows.reviews:
        known = by_id.get(cid)
        if known is not None and is_review_label(label):
            known.review = Review(
                label, reviewer or "", at or "", sha or "", rmodel or "", rversion or "", rlabel, rp, shown or ""
            )
