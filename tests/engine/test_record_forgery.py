"""Issue 26 item 5: everything a report rests on is in the hash chain, and a report is the record's anchor.

With plain SQL, ``UPDATE results SET p_all=...``, ``INSERT INTO thresholds``, ``UPDATE cases SET sample_id=...``
left ``verify`` intact.  Now they break the record; what the chain alone cannot show (a row appended with the
documented formula, rows cut off the end, the whole chain hashed again) shows against the chain head that the
signed PDF and the summary CSV print (``leukoscan-cli verify STORE --report FILE``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts, audit
from engine.case import schema as schema_mod
from engine.case.anchor import read_anchor
from engine.case.export import export_store
from engine.case.store import CaseStore
from engine.cli import main
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")
EXIT_BROKEN = 4


def _build(db: Path, root: Path) -> None:
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
    doc.set_sample_id(case, "BM-1")
    doc.review(cells, "accept", "ann")
    doc.sign_off(case, "ann")
    store.close()
    assert store.errors == []


@pytest.fixture
def signed(tmp_path):
    """A signed-off store and the summary CSV and PDF printed from it."""
    db = tmp_path / "case.leukoscan"
    _build(db, tmp_path / "incoming")
    summary = tmp_path / "signed_summary.csv"
    export_store(db, tmp_path / "signed.csv", summary, mark_exported=False)
    pdf = tmp_path / "signed.pdf"
    assert main(["report", str(db), "--pdf", str(pdf)]) == 0
    return db, summary, pdf


def _sql(db: Path, *stmts: str) -> None:
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys=OFF")
    for s in stmts:
        con.execute(s)
    con.commit()
    con.close()


def _verify(capsys, db: Path, *more: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", str(db), *more])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_the_summary_and_the_signed_pdf_print_the_chain_head(signed, capsys):
    db, summary, pdf = signed
    store = CaseStore.open(db, create=False, read_only=True)
    try:
        rows, head = store.head()
    finally:
        store.close()
    assert rows > 5 and read_anchor(summary) == read_anchor(pdf) == (rows, head)
    assert main(["report", str(tmp := summary.with_name("signed.csv")), "--pdf", str(db.with_name("csv.pdf"))]) == 0
    assert read_anchor(db.with_name("csv.pdf")) == (rows, head) and tmp.exists()  # from the CSV and its summary
    code, out = _verify(capsys, db, "--report", str(pdf))
    assert code == 0 and "holds the record the report printed" in out and "added since" not in out


@pytest.mark.parametrize(
    "sql, where",
    [
        ("UPDATE results SET p_all=0.99 WHERE p_all < 0.5", "results"),
        ("INSERT INTO thresholds(model, value) VALUES('m', 0.05)", "thresholds"),
        ("UPDATE cases SET sample_id='BM-2'", "cases"),
        ("UPDATE models SET threshold=0.2", "models"),
        ("UPDATE meta SET value='other' WHERE key='model'", "meta model"),
        ("UPDATE cells SET folder='elsewhere'", "cells"),
    ],
)
def test_sql_forgeries_of_the_numbers_break_the_record(signed, capsys, sql, where):
    db, _summary, _pdf = signed
    _sql(db, sql)
    code, out = _verify(capsys, db)
    assert code == EXIT_BROKEN and where in out


def _forge_appended_result(db: Path) -> None:
    """The documented formula, as someone with the code would: a chained record row moving p_all, and the live
    table changed to match."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN")
    path = con.execute("SELECT path FROM cells ORDER BY id LIMIT 1").fetchone()[0]
    audit.append(
        con,
        "record_events",
        {
            "action": "results",
            "target": "",
            "by": "",
            "data": json.dumps([[path, "m", "card-m", "sha0", "ok", "", 0.01, "{}", 0, ""]], separators=(",", ":")),
            "at": "2026-12-07T10:00:00Z",
        },
    )
    con.execute("UPDATE results SET p_all=0.01 WHERE cell_id=(SELECT id FROM cells WHERE path=?)", (path,))
    con.execute("COMMIT")
    con.close()


def test_an_appended_forgery_is_listed_against_the_report(signed, capsys):
    db, summary, _pdf = signed
    _forge_appended_result(db)
    assert _verify(capsys, db)[0] == 0  # the chain alone cannot tell (docs/case_store.md says so)
    code, out = _verify(capsys, db, "--report", str(summary))
    assert code == 0 and "1 row(s) added since the report" in out and "record_events" in out and ": results by" in out


def _rehash(con: sqlite3.Connection) -> None:
    prev = audit.GENESIS
    for r in audit.chain_rows(con):
        values = dict(
            zip(
                audit.COLS[r.table],
                con.execute(f"SELECT {', '.join(audit.COLS[r.table])} FROM {r.table} WHERE id=?", (r.id,)).fetchone(),
            )
        )
        h = audit.row_hash(r.table, r.id, r.seq, values, prev)
        con.execute(f"UPDATE {r.table} SET prev_hash=?, hash=? WHERE id=?", (prev, h, r.id))
        prev = h


def test_cut_off_and_rehashed_records_are_found_against_the_report(signed, capsys, tmp_path):
    db, summary, pdf = signed
    cut = tmp_path / "cut.leukoscan"
    cut.write_bytes(db.read_bytes())
    _sql(  # the sign-off cut off the end of the chain, and its live row with it
        cut,
        "DROP TRIGGER case_events_no_delete",
        "DELETE FROM case_events WHERE seq=(SELECT max(seq) FROM case_events)",
        "DELETE FROM signoffs",
        schema_mod.TRIGGER_SQL["case_events_no_delete"],
    )
    assert _verify(capsys, cut)[0] == 0  # intact in itself
    code, out = _verify(capsys, cut, "--report", str(pdf))
    assert code == EXIT_BROKEN and "truncated" in out

    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA foreign_keys=OFF")
    for t in audit.TABLES:
        con.execute(f"DROP TRIGGER {t}_no_update")
    path = con.execute("SELECT path FROM cells ORDER BY id LIMIT 1").fetchone()[0]
    rid, data = con.execute("SELECT id, data FROM record_events WHERE action='results'").fetchone()
    con.execute("UPDATE record_events SET data=? WHERE id=?", (data.replace("0.9,", "0.2,", 1), rid))
    con.execute("UPDATE results SET p_all=0.2 WHERE cell_id=(SELECT id FROM cells WHERE path=?)", (path,))
    _rehash(con)
    for t in audit.TABLES:
        con.execute(schema_mod.TRIGGER_SQL[f"{t}_no_update"])
    con.close()
    assert _verify(capsys, db)[0] == 0  # the whole chain hashed again: intact in itself
    code, out = _verify(capsys, db, "--report", str(summary))
    assert code == EXIT_BROKEN and "rewritten" in out


def test_a_report_without_a_record_is_refused(signed, capsys, tmp_path):
    db, _summary, _pdf = signed
    plain = tmp_path / "plain.csv"
    plain.write_text("folder,cells\n.,3\n")
    code, out = _verify(capsys, db, "--report", str(plain))
    assert code == 2 and "names no case record" in out


def test_a_version_3_store_is_upgraded_and_its_numbers_covered_from_then_on(tmp_path, monkeypatch, capsys):
    db = tmp_path / "v3.leukoscan"
    with monkeypatch.context() as m:
        m.setattr(schema_mod, "MIGRATIONS", schema_mod.MIGRATIONS[:3])
        _build(db, tmp_path / "incoming")
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    con.close()
    store = CaseStore.open(db, create=False)  # opens (migrated), intact
    try:
        assert store.version == schema_mod.schema_version() and store.problem is None
        assert [r["action"] for r in store.case_events()] == ["sign_off"]
    finally:
        store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT action, by FROM record_events").fetchall() == [("state", "LeukoScan (upgrade)")]
    con.close()
    _sql(db, "UPDATE results SET p_all=0.99")
    assert _verify(capsys, db)[0] == EXIT_BROKEN
