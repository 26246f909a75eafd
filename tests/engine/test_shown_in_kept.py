"""Where a cell was seen before its review was confirmed is part of the record (issue 26 item 8, schema version 5):
kept in ``reviews`` and ``review_events``, read back, covered by the hash chain and written to the reviews CSV."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from engine.case import CaseDocument, ModelFacts, audit
from engine.case import schema as schema_mod
from engine.case.export import review_history_rows, write_reviews
from engine.case.store import CaseStore
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")


def _build(db: Path, root: Path) -> None:
    """Three ALL calls: one confirmed in the walk, one on a gallery page, one seen in the preview then undone."""
    store = CaseStore.open(db)
    doc = CaseDocument()
    store.attach(doc)
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(3)])
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, root, ".", c.file, f"sha-{i}", "ok", "", 0.9, {}, False, ""))
            for i, c in enumerate(cells)
        ],
    )
    doc.mark_shown(cells[:1], "walk")
    doc.review(cells[:1], "accept", "ann")
    doc.mark_shown(cells[1:2], "gallery page")
    doc.review(cells[1:2], "HEM", "ann")
    doc.mark_shown(cells[2:], "preview")
    doc.review(cells[2:], "accept", "ann")
    doc.undo("ann")
    doc.redo("ann")
    store.close()
    assert store.errors == []


def _seen(db: Path) -> dict[str, str]:
    store = CaseStore.open(db, create=False)
    try:
        assert store.problem is None, store.problem
        doc = store.load()
        return {c.file: c.review.shown_in if c.review else "-" for c in doc.cells}
    finally:
        store.close()


def _sql(db: Path, *stmts: str) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    for s in stmts:
        con.execute(s)
    con.close()


def test_where_a_cell_was_seen_is_kept_and_read_back(tmp_path):
    db = tmp_path / "case.leukoscan"
    _build(db, tmp_path / "slide")
    assert _seen(db) == {"c0.bmp": "walk", "c1.bmp": "gallery page", "c2.bmp": "preview"}
    con = sqlite3.connect(db)
    logged = con.execute("SELECT action, shown_in FROM review_events WHERE path LIKE '%c2.bmp' ORDER BY id").fetchall()
    con.close()
    assert logged == [("review", "preview"), ("undo", "preview"), ("redo", "preview")]


def test_a_changed_shown_in_breaks_the_record(tmp_path):
    db = tmp_path / "case.leukoscan"
    _build(db, tmp_path / "slide")
    live = tmp_path / "live.leukoscan"
    live.write_bytes(db.read_bytes())
    _sql(live, "UPDATE reviews SET shown_in='walk' WHERE shown_in='gallery page'")
    with CaseStore.open(live, create=False) as store:
        assert store.problem is not None and "reviews" in store.problem.where
        assert "seen in the walk" in store.problem.why and "seen in the gallery page" in store.problem.why

    logged = tmp_path / "logged.leukoscan"
    logged.write_bytes(db.read_bytes())
    _sql(  # the log row and the live row changed together, the trigger put back as it was
        logged,
        "DROP TRIGGER review_events_no_update",
        "UPDATE review_events SET shown_in='walk' WHERE shown_in='gallery page'",
        "UPDATE reviews SET shown_in='walk' WHERE shown_in='gallery page'",
        schema_mod.TRIGGER_SQL["review_events_no_update"],
    )
    with CaseStore.open(logged, create=False) as store:
        assert store.problem is not None and "does not match its hash" in store.problem.why


def test_an_older_store_upgrades_and_keeps_its_chain(tmp_path, monkeypatch):
    db = tmp_path / "v4.leukoscan"
    with monkeypatch.context() as m:
        m.setattr(schema_mod, "MIGRATIONS", schema_mod.MIGRATIONS[:4])
        _build(db, tmp_path / "slide")
        assert _seen(db) == {"c0.bmp": "", "c1.bmp": "", "c2.bmp": ""}  # version 4: not recorded
    store = CaseStore.open(db, create=False)  # upgraded: every hash still holds
    try:
        assert store.version == schema_mod.schema_version() == 5 and store.problem is None
        doc = store.load()
        store.attach(doc)
        c = doc.cells[1]
        doc.mark_shown([c], "walk")
        doc.review([c], "ALL", "bob")
    finally:
        store.close()
    assert _seen(db) == {"c0.bmp": "", "c1.bmp": "walk", "c2.bmp": ""}
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM review_events WHERE shown_in IS NULL").fetchone()[0] > 0
    con.close()
    _sql(db, "UPDATE reviews SET shown_in='preview' WHERE shown_in=''")  # an old review given a place it never had
    with CaseStore.open(db, create=False) as again:
        assert again.problem is not None


def test_the_reviews_csv_says_where_each_cell_was_seen(tmp_path):
    db = tmp_path / "case.leukoscan"
    _build(db, tmp_path / "slide")
    out = write_reviews(tmp_path / "r_reviews.csv", review_history_rows(db))
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["cell"], r["action"], r["shown_in"]) for r in rows] == [
        ("c0.bmp", "review", "walk"),
        ("c1.bmp", "review", "gallery page"),
        ("c2.bmp", "review", "preview"),
        ("c2.bmp", "undo", "preview"),
        ("c2.bmp", "redo", "preview"),
    ]


def test_the_hash_of_a_row_without_shown_in_is_the_one_written_before_version_5():
    values = {c: None for c in audit.REVIEW_COLS}
    before = audit.row_hash("review_events", 1, 1, values, audit.GENESIS)
    assert before == audit.row_hash("review_events", 1, 1, {**values, "shown_in": None}, audit.GENESIS)
    assert before != audit.row_hash("review_events", 1, 1, {**values, "shown_in": ""}, audit.GENESIS)
