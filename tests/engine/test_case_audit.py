"""Issue 17 item 3: the case store's history is tamper-evident (no REPLACE of history rows, a SHA-256 chain,
the live reviews/sign-offs checked against the history, ``leukoscan-cli verify``, exports refuse a broken
record, times and accounts from the engine, names with control characters refused, older files migrated)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts, audit, record_check
from engine.case import schema as schema_mod
from engine.case.store import CaseStore
from engine.cli import main
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")
EXIT_BROKEN = 4


def _doc(tmp_path: Path, store: CaseStore) -> CaseDocument:
    doc = CaseDocument()
    store.attach(doc)
    a, b = tmp_path / "slide A", tmp_path / "slide B"
    cells = doc.add_items(
        [ScanItem(a / f"a{i}.bmp", a, ".") for i in range(4)] + [ScanItem(b / f"b{i}.bmp", b, ".") for i in range(2)]
    )
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (
                c,
                CellResult(
                    i, c.path, c.root, c.folder, c.file, f"sha-{i}", "ok", "", 0.55 if i < 4 else 0.1, {}, False, ""
                ),
            )
            for i, c in enumerate(cells)
        ],
    )
    return doc


def _signed(tmp_path: Path) -> Path:
    """A store with reviews (one undone), a sign-off, a reopen and a second sign-off."""
    db = tmp_path / "case.db"
    store = CaseStore.open(db)
    doc = _doc(tmp_path, store)
    a = list(doc.cells_of("slide A"))
    doc.review(a[:2], "HEM", "ann")
    doc.review(a[2:3], "ALL", "bob")
    doc.undo("bob")
    doc.review(a[2:], "accept", "ann")
    doc.set_sample_id(doc.case_named("slide A"), "BM-A")
    doc.sign_off("slide A", "ann", comment="ok")
    doc.reopen("slide A", "bob", "second look")
    doc.sign_off("slide A", "bob")
    store.close()
    assert store.errors == []
    return db


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def _verify(db: Path, capsys) -> tuple[int, str]:
    code = main(["verify", str(db)])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


# ------------------------------------------------------------------------------------------ REPLACE


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT OR REPLACE INTO review_events(id, step, action, path, new_label, reviewer, at)"
        " VALUES(1, 1, 'review', '/x.bmp', 'ALL', 'mallory', '2020-01-01T00:00:00Z')",
        "REPLACE INTO review_events(id, step, action, path, new_label, reviewer, at)"
        " VALUES(1, 1, 'review', '/x.bmp', 'ALL', 'mallory', '2020-01-01T00:00:00Z')",
        "REPLACE INTO case_events(id, case_root, action, by, at) VALUES(1, '/r', 'sign_off', 'mallory', 'x')",
        "INSERT OR REPLACE INTO case_events(id, case_root, action, by, at) VALUES(1, '/r', 'reopen', 'm', 'x')",
    ],
)
def test_replace_cannot_rewrite_a_history_row(tmp_path, sql):
    db = _signed(tmp_path)
    con = _raw(db)
    table = sql.split(" INTO ")[1].split("(")[0]
    before = con.execute(f"SELECT * FROM {table} WHERE id=1").fetchone()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute(sql)
    assert con.execute(f"SELECT * FROM {table} WHERE id=1").fetchone() == before
    con.close()


# ------------------------------------------------------------------------------------------ chain


def test_every_history_row_is_chained_and_verify_says_intact(tmp_path, capsys):
    db = _signed(tmp_path)
    con = _raw(db)
    rows = sorted(
        [
            (t, *r)
            for t in ("review_events", "case_events", "record_events")
            for r in con.execute(f"SELECT id, seq, prev_hash, hash FROM {t}")
        ],
        key=lambda r: r[2],
    )
    assert [r[2] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0][3] == audit.GENESIS and all(r[3] == p[4] for p, r in zip(rows, rows[1:]))
    assert len({r[4] for r in rows}) == len(rows) and all(len(r[4]) == 64 for r in rows)
    assert record_check.verify(con) is None
    con.close()
    code, out = _verify(db, capsys)
    assert code == 0 and "intact" in out


def _tamper(db: Path, *sql: str) -> None:
    con = _raw(db)
    for s in sql:
        con.execute(s)
    con.close()


@pytest.mark.parametrize(
    "sql, where",
    [
        (
            (
                "DROP TRIGGER review_events_no_update",
                "CREATE TRIGGER review_events_no_update BEFORE UPDATE ON review_events WHEN 0 BEGIN SELECT 1; END",
                "UPDATE review_events SET reviewer='mallory' WHERE id=2",
            ),
            "trigger review_events_no_update",  # issue 26 item 5: a trigger recreated WHEN 0 is itself found
        ),
        (
            (
                "DROP TRIGGER review_events_no_update",
                "UPDATE review_events SET reviewer='mallory' WHERE id=2",
                schema_mod.TRIGGER_SQL["review_events_no_update"],  # put back as it was: the row still shows
            ),
            "review_events row 2",
        ),
        (
            (
                "DROP TRIGGER case_events_no_delete",
                "DELETE FROM case_events WHERE id=2",
                schema_mod.TRIGGER_SQL["case_events_no_delete"],
            ),
            "case_events row 3",
        ),
        (("DROP TRIGGER case_events_no_replace",), "case_events_no_replace"),
        (("UPDATE reviews SET label='ALL' WHERE label='HEM'",), "reviews"),
        (("UPDATE signoffs SET signed_off_by='mallory'",), "signoffs"),
        (("DELETE FROM signoffs",), "signoffs"),
    ],
)
def test_a_changed_record_is_found_and_exports_refuse_it(tmp_path, capsys, sql, where):
    db = _signed(tmp_path)
    _tamper(db, *sql)
    code, out = _verify(db, capsys)
    assert code == EXIT_BROKEN and "broken" in out and where in out
    size = db.stat().st_size
    out_csv = tmp_path / "r.csv"
    assert main(["export", str(db), "--out", str(out_csv)]) == EXIT_BROKEN
    err = capsys.readouterr().err
    assert "broken" in err and where in err and not out_csv.exists()
    assert main(["report", str(db), "--pdf", str(tmp_path / "r.pdf")]) == EXIT_BROKEN
    assert "broken" in capsys.readouterr().err and not (tmp_path / "r.pdf").exists()
    assert db.exists() and db.stat().st_size >= size  # nothing deleted
    store = CaseStore.open(db, create=False)
    try:
        assert store.problem is not None and where in str(store.problem)
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ names and times


def test_the_engine_records_its_own_time_and_account(tmp_path):
    db = tmp_path / "case.db"
    store = CaseStore.open(db)
    doc = _doc(tmp_path, store)
    doc.review(list(doc.cells_of("slide A"))[:1], "HEM", "ann", at="1999-01-01T00:00:00Z")
    store.close()
    con = _raw(db)
    at, rec_at, rec_by = con.execute("SELECT at, recorded_at, recorded_by FROM review_events").fetchone()
    con.close()
    assert at == "1999-01-01T00:00:00Z" and rec_at > "2024" and rec_by == audit.os_user()


@pytest.mark.parametrize("name", ["ann\nSigned off by: chief", "ann\x1b[31m", "ann\u202eevil", "a\tb"])
def test_a_name_with_control_characters_is_refused(tmp_path, name):
    with pytest.raises(audit.RecordRefused, match="control characters"):
        audit.reviewer_name(name)
    db = tmp_path / "case.db"
    store = CaseStore.open(db)
    doc = _doc(tmp_path, store)
    with pytest.raises(audit.RecordRefused, match="control characters"):  # refused by the document already
        doc.review(list(doc.cells_of("slide A"))[:1], "HEM", name)
    store.close()
    con = _raw(db)
    assert con.execute("SELECT count(*) FROM review_events").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM reviews").fetchone()[0] == 0
    con.close()
    assert audit.reviewer_name("") == audit.os_user() and audit.reviewer_name(" Dr.  Ada ") == "Dr. Ada"


# ------------------------------------------------------------------------------------------ close, snapshot, migrate


def test_closing_and_reopening_the_cases_keeps_the_record_intact(tmp_path):
    """Issue 26 item 1: closing the cases closes the view; the record (sign-off included) is still whole after,
    and a document that opens it again finds it as it was."""
    db = _signed(tmp_path)
    store = CaseStore.open(db, create=False)
    doc = store.load()
    store.attach(doc)
    doc.clear()
    store.flush()
    assert store.verify() is None
    store.close()
    store = CaseStore.open(db, create=False)
    doc = store.load()
    store.attach(doc)
    a = tmp_path / "slide A"
    doc.add_items([ScanItem(a / "a0.bmp", a, ".")])  # the same image again: already in the record
    store.close()
    store = CaseStore.open(db, create=False)
    try:
        assert store.problem is None and store.load().signoff_of("slide A").by == "bob"
    finally:
        store.close()


def test_a_document_written_whole_is_in_the_history(tmp_path):
    src = _signed(tmp_path)
    store = CaseStore.open(src, create=False)
    doc = store.load()
    store.close()
    other = CaseStore.open(tmp_path / "copy.db")
    other.attach(doc)  # not loaded from it: written as it stands
    other.close()
    assert other.errors == []
    again = CaseStore.open(tmp_path / "copy.db", create=False)
    try:
        assert again.problem is None
        assert {e["action"] for e in again.review_events()} == {"import"}
        assert len(again.load().reviews) == len(doc.reviews) == 4
    finally:
        again.close()


def test_a_version_2_file_is_migrated_and_its_history_hashed(tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as m:
        m.setattr(schema_mod, "MIGRATIONS", schema_mod.MIGRATIONS[:2])
        db = _signed(tmp_path)
        # a review written whole (no history row) and a case closed before, as version 2 allowed
        con = _raw(db)
        assert con.execute("PRAGMA user_version").fetchone()[0] == 2
        con.execute(
            "INSERT INTO reviews(cell_id, label, reviewer, reviewed_at) SELECT id, 'ALL', 'zed',"
            " '2024-01-01T00:00:00Z' FROM cells WHERE path LIKE '%b0.bmp'"
        )
        con.close()
    assert schema_mod.schema_version() >= 3
    store = CaseStore.open(db, create=False)
    try:
        assert store.version == schema_mod.schema_version() and store.problem is None
        doc = store.load()
        assert doc.signoff_of("slide A").by == "bob" and len(doc.reviews) == 5
        events = store.review_events()
        assert all(e["hash"] for e in events) and [e["action"] for e in events][-2:] == ["upgrade", "import"]
        assert events[0]["recorded_at"] is None  # written before the chain: hashed as it was
    finally:
        store.close()
    code, out = _verify(db, capsys)
    assert code == 0 and "intact" in out
    _tamper(
        db,
        "DROP TRIGGER review_events_no_update",
        "UPDATE review_events SET new_label='ALL' WHERE id=1",
        "CREATE TRIGGER review_events_no_update BEFORE UPDATE ON review_events"
        " BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END",
    )
    code, out = _verify(db, capsys)
    assert code == EXIT_BROKEN and "review_events row 1" in out
