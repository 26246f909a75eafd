"""Case sign-off: blocked while cells are open, locks the case's reviews, reopen with a reason, stored
(schema version 2: ``signoffs`` + the append-only ``case_events``), migrated from version 1, and printed
in the summary CSV and the PDF header."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.case import CaseDocument, ModelFacts, SignOff
from engine.case import schema as schema_mod
from engine.case.events import SignOffAction, SignOffChanged
from engine.case.export import cell_rows, export_store, pdf_signoffs
from engine.case.store import CaseStore
from engine.cli import main
from engine.pipeline import CellResult, ScanItem
from engine.report import SUMMARY_COLUMNS, summarize, write_summary

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")
AT = "2024-06-01T09:30:00Z"


def _plain(so) -> tuple[str, str, str]:
    return (so.by, so.at, so.comment)


def _cr(i: int, cell, p: float) -> CellResult:
    return CellResult(i, cell.path, cell.root, cell.folder, cell.file, f"sha-{cell.key}", "ok", "", p, {}, False, "")


def _doc(
    tmp_path: Path, store: CaseStore | None = None, *, flagged: int = 12, plain: int = 3, other: int = 2
) -> CaseDocument:
    """Case "slide A" (``flagged`` cells at P 0.55: flagged; ``plain`` at 0.9, the last in a sub-folder) and
    case "slide B" (``other`` cells at 0.1), all classified by FACTS."""
    doc = CaseDocument()
    if store is not None:
        store.attach(doc)
    a, b = tmp_path / "slide A", tmp_path / "slide B"
    items = [ScanItem(a / f"f{i}.bmp", a, ".") for i in range(flagged)]
    items += [
        ScanItem(a / ("sub" if i == plain - 1 else ".") / f"p{i}.bmp", a, "sub" if i == plain - 1 else ".")
        for i in range(plain)
    ]
    items += [ScanItem(b / f"o{i}.bmp", b, ".") for i in range(other)]
    cells = doc.add_items(items)
    for case, sid in zip(doc.cases.values(), ("BM-A", "BM-B")):
        doc.set_sample_id(case, sid)  # a sign-off needs the patient's sample id (issue 26 item 3)
    doc.set_model(FACTS)
    ps = [0.55] * flagged + [0.9] * plain + [0.1] * other
    doc.add_results(FACTS, [(c, _cr(i, c, p)) for i, (c, p) in enumerate(zip(cells, ps))])
    return doc


def _case(doc: CaseDocument, name: str):
    case = doc.case_named(name)
    assert case is not None
    return case


def _cells(doc: CaseDocument, name: str):
    return list(doc.cells_of(name))


def _confirm_blasts(doc: CaseDocument, case=None, who: str = "ann") -> None:
    """Accept every ALL call nobody confirmed yet: a sign-off needs each blast call seen by a person."""
    cells = [c for c in doc.cells if c.blast_unconfirmed and (case is None or c.case == case or c.root == case)]
    if cells:
        doc.review(cells, "accept", who)


def _texts(path: Path) -> list[str]:
    return [" ".join(p.extract_text().split()) for p in PdfReader(path).pages]


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------ document


def test_sign_off_is_blocked_while_flagged_cells_are_open(tmp_path):
    doc = _doc(tmp_path)
    a = _case(doc, "slide A")
    assert doc.can_sign_off(a) == (False, "3 ALL calls are not confirmed; 12 flagged cells are not reviewed yet")
    with pytest.raises(ValueError, match="12 flagged cells are not reviewed yet"):
        doc.sign_off(a, "ann")
    flagged = [c for c in _cells(doc, "slide A") if c.flagged]
    doc.review(flagged[:11], "accept", "ann")
    # review safety: every ALL call is confirmed by a person, flagged or not
    doc.review([c for c in _cells(doc, "slide A") if c.blast_unconfirmed and not c.flagged], "accept", "ann")
    assert doc.can_sign_off(a) == (False, "1 flagged cell is not reviewed yet")
    # a cell not classified yet blocks too, and both reasons are given
    doc.add_items([ScanItem(Path(a.root) / "late.bmp", Path(a.root), ".")])
    ok, why = doc.can_sign_off("slide A")  # by display name, as well as by Case or root
    assert not ok and why == "1 cell is not classified yet; 1 flagged cell is not reviewed yet"
    late = doc.cell(str(Path(a.root) / "late.bmp"))
    doc.add_results(FACTS, [(late, _cr(99, late, 0.95))])
    doc.review(flagged[11:], "HEM", "ann")
    assert doc.can_sign_off(a.root) == (False, "1 ALL call is not confirmed")  # the late cell
    doc.review([late], "accept", "ann")
    assert doc.can_sign_off(a.root) == (True, "")
    assert doc.signoff_of("slide A") is None and doc.signoffs == {}

    doc.mark_exported(AT)
    events = []
    doc.subscribe(events.append)
    with pytest.raises(ValueError, match="name"):
        doc.sign_off(a, "   ")
    assert a.signoff is None and not doc.unexported and events == []
    so = doc.sign_off(a, "  Dr.  Ada ", comment=" fine ", at=AT)
    assert so == a.signoff == doc.signoff_of("slide A") and _plain(so) == ("Dr. Ada", AT, "fine")
    f = doc.current  # what the verdict rested on is kept with it
    assert so.basis.startswith(f"{f.name} {f.version}, threshold {doc.threshold:.3f}; cells 16, set ")
    assert doc.signed_off_elsewhere() == []
    assert doc.signoffs == {a.root: so} and so.as_dict() == {
        "signed_off_by": "Dr. Ada",
        "signed_off_at": AT,
        "comment": "fine",
        "basis": so.basis,
    }
    assert doc.unexported  # a sign-off is a change to export
    assert events == [SignOffChanged(a.root, SignOffAction.SIGN_OFF, "Dr. Ada", AT, "fine", so.basis)]
    ok, why = doc.can_sign_off(a)
    assert not ok and why.startswith("the case is already signed off by Dr. Ada")
    with pytest.raises(ValueError, match="already signed off"):
        doc.sign_off(a, "bob")
    # a case with nothing in it cannot be signed off
    empty = doc.case_of_root(tmp_path / "empty")
    assert doc.can_sign_off(empty) == (False, "the case has no cells")
    with pytest.raises(KeyError):
        doc.can_sign_off("no such case")
    assert doc.signoff_of("no such case") is None
    # a later threshold change is noticed, the sign-off keeps what it was signed with
    doc.set_threshold(doc.threshold + 0.1)
    assert doc.signed_off_elsewhere() == [a] and a.signoff == so


def test_sign_off_locks_the_reviews_of_its_cells(tmp_path):
    doc = _doc(tmp_path, flagged=0, plain=3, other=2)  # nothing flagged: can be signed off at once
    a_cells, b_cells = _cells(doc, "slide A"), _cells(doc, "slide B")
    doc.review(a_cells[2:], "accept", "ann")  # the third ALL call confirmed (a sign-off needs every one)
    s1 = doc.review(a_cells[:1], "HEM", "ann")  # an override on A (then undone: a redo step on A)
    doc.undo("ann")
    assert doc.can_redo and a_cells[0].review is None
    doc.redo("ann")
    s2 = doc.review(a_cells[1:2], "HEM", "ann")
    assert s1 is not None and s2 is not None
    doc.sign_off("slide A", "ann", at=AT)
    assert all(doc.locked(c) for c in a_cells) and not any(doc.locked(c) for c in b_cells)

    before = [c.review for c in a_cells]
    undo_before, redo_before = list(doc.history.undo_steps), list(doc.history.redo_steps)
    events = []
    doc.subscribe(events.append)
    assert doc.review(a_cells, "ALL", "bob") is None  # every cell given is locked
    assert doc.review(a_cells[:1], "clear", "bob") is None
    assert doc.undo("bob") is None  # the last step touches A: refused, nothing changes
    assert not doc.can_undo
    assert [c.review for c in a_cells] == before and events == []
    assert doc.history.undo_steps == undo_before and doc.history.redo_steps == redo_before

    # the other case is not locked: a mixed review changes only its cells
    step = doc.review([*a_cells, *b_cells], "ALL", "bob")
    assert step is not None and {ch.cell.key for ch in step.changes} == {c.key for c in b_cells}
    assert [c.review for c in a_cells] == before
    assert doc.undo("bob") is not None and all(c.review is None for c in b_cells)  # B's step undoes
    assert doc.can_redo and doc.redo("bob") is not None  # ... and redoes
    assert doc.undo("bob") is not None
    assert doc.undo("bob") is None and [c.review for c in a_cells] == before  # then A's step: refused

    # a redo of a step on A is refused as well
    doc.reopen("slide A", "ann", "second look")
    assert doc.review(a_cells[:1], "ALL", "ann") is not None
    assert doc.undo("ann") is not None and a_cells[0].review.label == "HEM"  # on the redo stack now
    doc.sign_off("slide A", "ann")
    redo_before = list(doc.history.redo_steps)
    assert not doc.can_redo and doc.redo("ann") is None and doc.history.redo_steps == redo_before
    doc.reopen("slide A", "ann", "fix it")
    assert doc.redo("ann") is not None and a_cells[0].review.label == "ALL"
    assert not any(doc.locked(c) for c in a_cells)


def test_reopen_needs_a_reason_and_is_logged_append_only(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = _doc(tmp_path, store, flagged=2)
    a = _case(doc, "slide A")
    with pytest.raises(ValueError, match="not signed off"):
        doc.reopen(a, "ann", "why not")
    doc.review([c for c in _cells(doc, "slide A") if c.flagged], "accept", "ann")
    _confirm_blasts(doc)
    doc.sign_off(a, "ann", comment="=looks fine", at="2024-06-01T10:00:00Z")
    events = []
    doc.subscribe(events.append)
    for by, reason in (("bob", ""), ("bob", "   "), ("", "a reason"), ("bob", None)):
        with pytest.raises(ValueError):
            doc.reopen(a, by, reason)
    assert a.signoff is not None and events == []
    old = doc.reopen(a, " bob ", " new cells found ", at="2024-06-02T08:00:00Z")
    assert old.by == "ann" and a.signoff is None and doc.signoff_of("slide A") is None
    assert events == [SignOffChanged(a.root, SignOffAction.REOPEN, "bob", "2024-06-02T08:00:00Z", "new cells found")]
    assert doc.review(_cells(doc, "slide A")[:1], "ALL", "bob") is not None  # unlocked again
    _confirm_blasts(doc)
    doc.sign_off(a, "carl", at="2024-06-03T08:00:00Z")
    rows = store.case_events()
    store.close()
    assert [(r["case_root"], r["action"], r["by"], r["at"], r["text"]) for r in rows] == [
        (a.root, "sign_off", "ann", "2024-06-01T10:00:00Z", "=looks fine"),
        (a.root, "reopen", "bob", "2024-06-02T08:00:00Z", "new cells found"),
        (a.root, "sign_off", "carl", "2024-06-03T08:00:00Z", ""),
    ]

    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE case_events SET by = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM case_events WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO case_events(case_root, action, by, at) VALUES('x', 'approve', 'y', 'z')")
    con.rollback()
    assert con.execute("SELECT count(*) FROM case_events").fetchone()[0] == 3
    assert con.execute("SELECT signed_off_by, signed_off_at, comment FROM signoffs").fetchall() == [
        ("carl", "2024-06-03T08:00:00Z", "")
    ]  # the current state only
    con.close()


# ------------------------------------------------------------------------------------------ store


def test_sign_off_round_trips_through_the_store(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = _doc(tmp_path, store, flagged=1)
    doc.review([c for c in _cells(doc, "slide A") if c.flagged], "HEM", "ann")
    _confirm_blasts(doc)
    doc.sign_off("slide A", "ann", comment="ok, 1 override", at=AT)
    _confirm_blasts(doc)
    doc.sign_off("slide B", "bob", at=AT)
    doc.reopen("slide B", "bob", "wrong slide")
    store.close()
    assert store.errors == []

    again = CaseStore.open(path, create=False)
    loaded = again.load()
    a = _case(loaded, "slide A")
    assert _plain(a.signoff) == ("ann", AT, "ok, 1 override") and "threshold" in a.signoff.basis
    assert _case(loaded, "slide B").signoff is None
    assert loaded.signoffs == doc.signoffs and loaded.unexported
    assert all(loaded.locked(c) for c in _cells(loaded, "slide A"))
    assert loaded.review(_cells(loaded, "slide A"), "ALL", "carl") is None  # still locked after a restore
    assert loaded.undo("carl") is None  # the restored last step is on A
    again.attach(loaded)
    loaded.reopen(a, "carl", "recount")
    again.close()
    assert CaseStore.open(path).load().signoffs == {}
    assert [r["action"] for r in CaseStore.open(path).case_events()] == ["sign_off", "sign_off", "reopen", "reopen"]

    # a document that did not come from the store is written whole, sign-offs included
    fresh = _doc(tmp_path / "late", flagged=0)
    _confirm_blasts(fresh)
    fresh.sign_off("slide A", "dora", at=AT)
    late = CaseStore.open(tmp_path / "late.db")
    late.attach(fresh)
    late.close()
    assert CaseStore.open(tmp_path / "late.db").load().signoffs == fresh.signoffs

    # closing the cases keeps their sign-offs and their log (issue 26 item 1: closing never removes a record)
    store = CaseStore.open(path)
    doc = store.load()
    store.attach(doc)
    _confirm_blasts(doc)
    doc.sign_off("slide B", "eve")
    doc.clear()
    store.close()
    assert store.errors == []
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM signoffs").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM case_events").fetchone()[0] == 5
    con.close()


def test_a_version_1_file_is_migrated_to_version_2(tmp_path, monkeypatch):
    path = tmp_path / "v1.db"
    with monkeypatch.context() as m:
        m.setattr(schema_mod, "MIGRATIONS", schema_mod.MIGRATIONS[:1])  # the LeukoScan before sign-off
        store = CaseStore.open(path)
        doc = _doc(tmp_path, store, flagged=4)
        doc.set_sample_id(_case(doc, "slide A"), "BM-1")
        doc.review(_cells(doc, "slide A")[:3], "HEM", "ann")
        doc.review(_cells(doc, "slide B")[:1], "ALL", "bob")
        doc.undo("bob")
        doc.set_threshold(0.45)
        store.close()
        assert store.errors == []
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    assert not con.execute("SELECT name FROM sqlite_master WHERE name IN ('signoffs', 'case_events')").fetchall()
    con.close()

    assert schema_mod.schema_version() >= 2
    upgraded = CaseStore.open(path, create=False)
    assert upgraded.version == schema_mod.schema_version()
    assert upgraded.meta()["schema_version"] == str(schema_mod.schema_version())
    loaded = upgraded.load()
    assert [(c.key, c.case, c.results, c.review, c.prediction, c.flagged) for c in loaded.cells] == [
        (c.key, c.case, c.results, c.review, c.prediction, c.flagged) for c in doc.cells
    ]
    assert [(c.root, c.name, c.sample_id, c.signoff) for c in loaded.cases.values()] == [
        (c.root, c.name, c.sample_id, None) for c in doc.cases.values()
    ]
    assert loaded.thresholds == {"m": 0.45}
    assert len([e for e in upgraded.review_events() if e["action"] != "upgrade"]) == 5  # (+ the v3 marker)
    assert upgraded.case_events() == []
    upgraded.attach(loaded)  # the upgraded file takes sign-offs
    loaded.review([c for c in _cells(loaded, "slide A") if c.review_open], "accept", "ann")
    _confirm_blasts(loaded)
    loaded.sign_off("slide A", "ann", at=AT)
    upgraded.close()
    assert upgraded.errors == []
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
    assert {"signoffs", "case_events", "case_events_no_update", "case_events_no_delete"} <= tables
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
        schema_mod.schema_version()
    )
    con.close()
    assert _plain(CaseStore.open(path).load().signoff_of("slide A")) == ("ann", AT, "")


# ------------------------------------------------------------------------------------------ reports


def test_summary_columns_from_export_store_and_summarize(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = _doc(tmp_path, store, flagged=0, plain=3, other=2)  # slide A has folders "." and "sub"
    _confirm_blasts(doc)
    doc.sign_off("slide A", "Dr. Ada", comment="=SUM(A1)", at=AT)
    store.close()
    at = SUMMARY_COLUMNS.index("signed_off_by")
    assert list(SUMMARY_COLUMNS[at : at + 3]) == ["signed_off_by", "signed_off_at", "comment"]

    written = export_store(path, tmp_path / "r.csv", tmp_path / "s.csv").written
    summary = _read(written["summary"])
    assert list(summary[0]) == list(SUMMARY_COLUMNS)
    a_root, b_root = str(tmp_path / "slide A"), str(tmp_path / "slide B")
    assert [(r["root"], r["folder"], r["signed_off_by"], r["signed_off_at"], r["comment"]) for r in summary] == [
        (a_root, a_root, "Dr. Ada", AT, "'=SUM(A1)"),  # the real folder (it was "." for every case)
        (a_root, str(Path(a_root) / "sub"), "Dr. Ada", AT, "'=SUM(A1)"),  # neutralised
        (b_root, b_root, "", "", ""),
    ]

    rows = cell_rows(CaseStore.open(path).load())
    plain = summarize(rows)
    assert all(r["signed_off_by"] == r["signed_off_at"] == r["comment"] == "" for r in plain)
    so = SignOff("bob", AT, "checked")
    for signoffs in (
        {Path(b_root): so},
        {b_root: so.as_dict()},
        {b_root: {"by": "bob", "at": AT, "comment": "checked"}},
    ):
        got = summarize(rows, signoffs=signoffs)
        assert [(r["signed_off_by"], r["signed_off_at"], r["comment"]) for r in got] == [
            ("", "", ""),
            ("", "", ""),
            ("bob", AT, "checked"),
        ]
        assert {k: v for k, v in got[0].items()} == plain[0]  # nothing else changes
    write_summary(tmp_path / "s2.csv", summarize(rows, signoffs={b_root: so}))
    assert _read(tmp_path / "s2.csv")[-1]["signed_off_by"] == "bob"
    got = pdf_signoffs(CaseStore.open(path).load())
    assert {r: {k: v for k, v in d.items() if k != "basis"} for r, d in got.items()} == {
        a_root: {"signed_off_by": "Dr. Ada", "signed_off_at": AT, "comment": "=SUM(A1)"}
    }
    assert "threshold" in got[a_root]["basis"]


def test_cli_export_and_pdf_report_show_the_signer(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    db = tmp_path / "CASE.db"
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "plain.csv"),
                "--summary",
                str(tmp_path / "plain_summary.csv"),
                *common,
            ]
        )
        == 0
    )
    plain = _read(tmp_path / "plain_summary.csv")
    assert list(plain[0]) == list(SUMMARY_COLUMNS)
    assert all(r["signed_off_by"] == r["signed_off_at"] == r["comment"] == "" for r in plain)  # plain classify
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "r.csv"), "--store", str(db), *common]) == 0

    store = CaseStore.open(db, create=False)
    doc = store.load()
    store.attach(doc)
    (case,) = doc.cases.values()
    doc.review([c for c in doc.cells if c.review_open], "accept", "Ada Lovelace")
    _confirm_blasts(doc)
    doc.set_sample_id(case, "BM-7")
    doc.sign_off(case, "Ada Lovelace", comment="all good", at=AT)
    store.close()
    capsys.readouterr()

    pdf = tmp_path / "case.pdf"
    assert main(["report", str(db), "--pdf", str(pdf), "--models-dir", str(tiny_models_dir)]) == 0
    text = " ".join(_texts(pdf))
    assert "signed off by Ada Lovelace" in text and "all good" in text and "not signed off" not in text

    assert main(["export", str(db), "--out", str(tmp_path / "e.csv"), "--summary", str(tmp_path / "es.csv")]) == 0
    (row,) = _read(tmp_path / "es.csv")
    assert (row["signed_off_by"], row["signed_off_at"], row["comment"]) == ("Ada Lovelace", AT, "all good")
    # a later `classify --store` into the same file keeps the sign-off, and its summary says so
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "r2.csv"),
                "--summary",
                str(tmp_path / "s2.csv"),
                "--store",
                str(db),
                *common,
            ]
        )
        == 0
    )
    assert _read(tmp_path / "s2.csv")[0]["signed_off_by"] == "Ada Lovelace"
    assert _plain(CaseStore.open(db).load().signoff_of(case.name)) == ("Ada Lovelace", AT, "all good")

    # the same report from the store, reopened: "not signed off"
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    doc.reopen(case.root, "Ada Lovelace", "one more look")
    store.close()
    assert main(["report", str(db), "--pdf", str(pdf), "--force"]) == 0
    assert "not signed off" in _texts(pdf)[0]
