"""Issue 26 item 1 (store side): closing the cases never deletes a record.  "Open, sample id, confirm, sign off,
Close all cases, close without exporting" left 0 rows in reviews, signoffs, cells and cases, Find case record said
"No case record", and verify said intact.  Now the record stays whole and is found again, a case is archived (never
removed) with who and when, and verify finds rows removed by any path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts
from engine.case.records import find_records
from engine.case.store import CaseStore
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")
TABLES = ("cases", "cells", "results", "reviews", "signoffs", "thresholds", "review_events", "case_events")


def _counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()


def _signed_then_closed(tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    """The issue's steps through the document API: open a folder, set the sample id, confirm every call, sign
    off, then Close all cases (no export)."""
    db, root = tmp_path / "session.leukoscan", tmp_path / "incoming"
    store = CaseStore.open(db)
    doc = CaseDocument()
    store.attach(doc)
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(5)])
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (
                c,
                CellResult(
                    i, c.path, c.root, c.folder, c.file, f"sha{i}", "ok", "", 0.9 if i < 2 else 0.1, {}, False, ""
                ),
            )
            for i, c in enumerate(cells)
        ],
    )
    case = doc.case_of_root(root)
    doc.set_sample_id(case, "BM-H5-001")
    doc.set_threshold(0.45)
    doc.review(cells, "accept", "ann")
    doc.sign_off(case, "ann")
    store.flush()
    before = _counts(db)
    assert before["signoffs"] == 1 and before["reviews"] == 5 and before["cells"] == 5
    doc.clear("ann")  # File > Close all cases, "Close without exporting"
    store.close()
    assert store.errors == []
    return db, root, before


def test_closing_the_cases_deletes_no_row_and_the_record_is_found_again(tmp_path):
    db, root, before = _signed_then_closed(tmp_path)
    assert _counts(db) == before  # every row is still there
    found = find_records([db], folder=root)  # Find case record: by folder ...
    assert [r.path for r in found] == [db] and found[0].signed == {str(root)}
    assert [r.path for r in find_records([db], sample_id="bm-h5-001")] == [db]  # ... and by sample id
    store = CaseStore.open(db, create=False)
    try:
        assert store.problem is None
        doc = store.load()  # opened again: nothing to classify, the sign-off and the sample id as they were
        case = doc.cases[str(root)]
        assert case.sample_id == "BM-H5-001" and case.signoff is not None and case.signoff.by == "ann"
        assert doc.unclassified() == [] and len(doc.reviews) == 5 and doc.threshold == 0.45
    finally:
        store.close()


@pytest.mark.parametrize(
    "sql, where",
    [
        ("DELETE FROM signoffs", "signoffs"),
        ("DELETE FROM reviews", "reviews"),
        ("DELETE FROM results", "results"),
        ("DELETE FROM cells WHERE path LIKE '%c4.bmp'", "cells"),
        ("DELETE FROM cases", "case"),
    ],
)
def test_verify_finds_rows_removed_by_any_path(tmp_path, sql, where):
    db, _root, _ = _signed_then_closed(tmp_path)
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute(sql)
    con.commit()
    con.close()
    store = CaseStore.open(db, create=False, read_only=True)
    try:
        problem = store.verify()
    finally:
        store.close()
    assert problem is not None and where in str(problem)


def test_a_signed_off_case_is_archived_with_who_and_when_never_removed(tmp_path):
    db, root, before = _signed_then_closed(tmp_path)
    store = CaseStore.open(db, create=False)
    try:
        with pytest.raises(ValueError, match="name"):
            store.archive(str(root), "")
        with pytest.raises(ValueError, match="no case"):
            store.archive(str(tmp_path / "elsewhere"), "ann")
        store.archive(str(root), "Dr. Ada", "reported to the ward", at="2026-12-07T10:00:00Z")
        assert store.archived() == {str(root): ("Dr. Ada", "2026-12-07T10:00:00Z", "reported to the ward")}
        assert store.verify() is None
    finally:
        store.close()
    assert _counts(db) == before  # archived: kept whole
    assert find_records([db], folder=root)[0].archived == {str(root)}
