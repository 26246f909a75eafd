"""The SQLite case store: round trip, append-only audit trail, damaged and newer files, migrations,
kill -9, changed images, ``classify --store`` / ``export``, restore time."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts
from engine.case import schema as schema_mod
from engine.case import writer as writer_mod
from engine.case.export import REVIEW_COLUMNS, cell_rows, export_store, review_history_rows, reviews_path
from engine.case.headless import rehash_changed
from engine.case.ops import PutResults
from engine.case.store import CaseStore, StoreError, move_aside
from engine.cli import main
from engine.pipeline import CellResult, ScanItem

REPO = Path(__file__).resolve().parents[2]

FA = ModelFacts("ens", "1.0", "card-a", 0.5, 0.1, ("m1", "m2"), "CPUExecutionProvider", "Ensemble")
FB = ModelFacts("single", "2.1", "card-b", 0.4, 0.05, (), "CPUExecutionProvider", "Single")


def _items(root: Path, n: int, folder: str = ".") -> list[ScanItem]:
    return [
        ScanItem(root / (f"c{i:05d}.bmp" if folder == "." else f"{folder}/c{i:05d}.bmp"), root, folder)
        for i in range(n)
    ]


def _cr(
    i: int, cell, p: float, *, members: tuple[str, ...] = (), status: str = "ok", sha: str | None = None, qc: str = ""
) -> CellResult:
    ok = status == "ok"
    return CellResult(
        i,
        cell.path,
        cell.root,
        cell.folder,
        cell.file,
        sha if sha is not None else f"sha-{cell.key}",
        status,
        "" if ok else "cannot decode image",
        p if ok else None,
        {m: min(1.0, p + 0.01 * k) for k, m in enumerate(members)} if ok else {},
        bool(ok and i % 7 == 0),
        qc,
    )


def _history(doc: CaseDocument):
    def norm(steps):
        return [(s.number, s.action, s.reviewer, s.at, [(c.cell.key, c.old, c.new) for c in s.changes]) for s in steps]

    return norm(doc.history.undo_steps), norm(doc.history.redo_steps)


def _state(doc: CaseDocument) -> dict:
    return {
        "session": (doc.session_id, doc.started),
        "cases": [(c.root, c.name, c.sample_id) for c in doc.cases.values()],
        "opened": dict(doc.opened),
        "cells": [(c.key, str(c.root), c.folder, c.case, c.results, c.review) for c in doc.cells],
        "decisions": [(c.prediction, c.flagged, c.threshold) for c in doc.cells],
        "facts": dict(doc.facts),
        "model": doc.model_name,
        "thresholds": dict(doc.thresholds),
        "export": (doc.exported_at, doc.unexported),
        "history": _history(doc),
    }


def _build(tmp_path: Path, store: CaseStore | None = None) -> CaseDocument:
    doc = CaseDocument()
    if store is not None:
        store.attach(doc)
    r1, r2 = tmp_path / "slide 1", tmp_path / "other" / "slide 1"
    doc.note_opened(str(r1), True)
    doc.note_opened(str(r2 / "c00000.bmp"), False)
    cells = doc.add_items(_items(r1, 30) + _items(r1, 5, "sub") + _items(r2, 3))
    doc.set_model(FA)
    doc.add_results(
        FA,
        [
            (
                c,
                _cr(
                    i,
                    c,
                    i / 40,
                    members=FA.member_names,
                    status="error" if i == 3 else "ok",
                    qc="blurred" if i == 5 else "",
                ),
            )
            for i, c in enumerate(cells)
        ],
    )
    doc.set_threshold(0.45)
    doc.set_model(FB)
    doc.add_results(FB, [(c, _cr(i, c, 1 - i / 40)) for i, c in enumerate(cells[:20])])
    doc.set_threshold(0.3)
    doc.set_model(FA)
    doc.set_sample_id(doc.cases[str(r1)], "  S-2024  001 ")
    doc.review(cells[:4], "ALL", "ann")
    doc.review(cells[2:6], "HEM", "bob")
    doc.undo("ann")
    doc.review(cells[10:12], "accept", "carl")
    doc.review(cells[10:11], "clear", "dora")
    doc.undo("dora")
    doc.redo("dora")
    doc.undo()
    doc.mark_exported("2024-05-01T10:00:00Z")
    doc.review(cells[20:21], "ALL", "ann")
    return doc


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_equals(tmp_path):
    path = tmp_path / "case.leukoscan"
    store = CaseStore.open(path)
    errors = []
    doc = _build(tmp_path, store)
    store.on_error = errors.append
    assert store.flush(10)
    store.close()
    assert errors == [] and store.errors == []

    again = CaseStore.open(path, create=False)
    loaded = again.load()
    assert _state(loaded) == _state(doc)
    assert loaded.cases[str(tmp_path / "slide 1")].sample_id == "S-2024 001"
    assert loaded.thresholds == {"ens": 0.45, "single": 0.3} and loaded.threshold == 0.45
    assert set(loaded.cells[0].results) == {"ens", "single"}
    assert loaded.cells[0].results["ens"].member_p == {"m1": 0.0, "m2": 0.01}
    assert loaded.unexported and loaded.exported_at == "2024-05-01T10:00:00Z"
    # the restored history is usable: undo/redo act like in the original document, and are stored
    again.attach(loaded)
    for d in (doc, loaded):
        d.undo("eve")
        d.undo("eve")
        d.redo("eve")
        d.review(d.cells[25:27], "HEM", "fay")
    assert [(c.key, c.review) for c in loaded.cells] == [(c.key, c.review) for c in doc.cells]
    assert [(s.number, s.action) for s in loaded.history.undo_steps] == [
        (s.number, s.action) for s in doc.history.undo_steps
    ]
    again.close()
    third = CaseStore.open(path)
    reloaded = third.load()
    assert [(c.key, c.review) for c in reloaded.cells] == [(c.key, c.review) for c in loaded.cells]
    assert _history(reloaded)[0][-1][0] == _history(loaded)[0][-1][0]  # newest step number continues
    third.close()


def test_a_document_attached_later_is_written_whole(tmp_path):
    doc = _build(tmp_path)
    store = CaseStore.open(tmp_path / "late.db")
    store.attach(doc)
    store.close()
    loaded = CaseStore.open(tmp_path / "late.db").load()
    want, got = _state(doc), _state(loaded)
    assert got.pop("history") == ([], [])  # the log starts with the attach
    want.pop("history")
    assert got == want


def test_schema_is_plain_sqlite_with_meta(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    _build(tmp_path, store)
    store.close()
    con = sqlite3.connect(path)
    meta = dict(con.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == "5" == str(con.execute("PRAGMA user_version").fetchone()[0])
    assert {"session_id", "started", "saved", "app_version", "model", "exported_at", "unexported"} <= set(meta)
    assert meta["model"] == "ens" and meta["unexported"] == "1"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # the documented example queries work
    per_case = con.execute(
        "SELECT ca.name, count(*) FROM cells ce JOIN cases ca ON ca.id = ce.case_id GROUP BY ca.id ORDER BY ca.id"
    ).fetchall()
    assert per_case == [("slide 1", 35), ("slide 1 (other)", 3)]
    overrides = con.execute("SELECT count(*) FROM reviews WHERE model_label IS NOT NULL AND label != model_label")
    assert overrides.fetchone()[0] >= 1
    assert con.execute("SELECT count(*) FROM review_events WHERE action = 'undo'").fetchone()[0] >= 3
    if os.name != "nt":
        assert os.stat(path).st_mode & 0o077 == 0  # patient data: owner only
    con.close()


# ------------------------------------------------------------------------------------------ audit trail


def test_review_events_are_append_only(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    _build(tmp_path, store)
    store.close()
    con = sqlite3.connect(path)
    n = con.execute("SELECT count(*) FROM review_events").fetchone()[0]
    assert n > 10
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE review_events SET reviewer = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM review_events WHERE id = 1")
    con.rollback()
    assert con.execute("SELECT count(*) FROM review_events").fetchone()[0] == n
    con.close()


def test_clear_closes_the_view_and_keeps_the_whole_record(tmp_path):
    """Issue 26 item 1: closing the cases deletes nothing (it did: cells, results, reviews, cases, opened); the
    record is found and loaded again as it was, the close logged; the store follows the document no further."""
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = _build(tmp_path, store)
    store.flush()
    con = sqlite3.connect(path)
    tables = ("cells", "results", "reviews", "cases", "opened", "thresholds", "review_events")
    before = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
    state = _state(doc)
    doc.clear("ann")
    store.flush()
    assert [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables] == before
    assert con.execute("SELECT action, by FROM record_events ORDER BY id DESC LIMIT 1").fetchone() == ("close", "ann")
    con.close()
    doc.add_items(_items(tmp_path / "another", 2))  # not this record's: not written to it, and said so
    store.close()
    assert len(store.errors) == 1 and "were closed" in store.errors[0]
    again = CaseStore.open(path)
    try:
        assert again.problem is None
        loaded = _state(again.load())
        assert {k: v for k, v in loaded.items() if k != "export"} == {k: v for k, v in state.items() if k != "export"}
    finally:
        again.close()


def test_review_history_rows_and_csv(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    cells = doc.add_items(_items(tmp_path / "s", 3))
    doc.set_model(FB)
    doc.add_results(FB, [(c, _cr(i, c, 0.9)) for i, c in enumerate(cells)])
    doc.review(cells[:2], "HEM", "=cmd|' /C calc'!A0", at="2024-01-02T03:04:05Z")
    doc.review(cells[:1], "clear", "ann")
    doc.undo("bob")
    rows = review_history_rows(store)
    store.close()
    assert [(r["cell"], r["old"], r["new"], r["action"]) for r in rows] == [
        ("c00000.bmp", "", "HEM", "review"),
        ("c00001.bmp", "", "HEM", "review"),
        ("c00000.bmp", "HEM", "", "review"),
        ("c00000.bmp", "", "HEM", "undo"),
    ]
    assert rows[0]["who"].startswith("=cmd") and rows[0]["when"] == "2024-01-02T03:04:05Z"
    assert rows[2]["who"] == "ann" and rows[3]["who"] == "bob"  # who cleared, who undid
    assert all(r["model_version"] == "2.1" and r["model"] == "single" for r in rows)
    out = export_store(path, tmp_path / "report.csv").written
    assert out["reviews"] == tmp_path / "report_reviews.csv" == reviews_path(tmp_path / "report.csv")
    with open(out["reviews"], encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == list(REVIEW_COLUMNS)
    assert written[0]["who"] == "'=cmd|' /C calc'!A0"  # neutralised like every report
    assert CaseStore.open(path).meta()["unexported"] == "0"  # the export is recorded


# ------------------------------------------------------------------------------------------ bad files


def test_random_bytes_are_refused_and_moved_aside(tmp_path):
    path = tmp_path / "case.db"
    data = os.urandom(8192)
    path.write_bytes(data)
    with pytest.raises(StoreError) as exc:
        CaseStore.open(path)
    assert "not an SQLite database" in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.kind == "not_sqlite" and path.read_bytes() == data
    moved = move_aside(path)
    assert moved == tmp_path / "case.db.corrupt" and moved.read_bytes() == data and not path.exists()
    path.write_bytes(b"again")
    assert move_aside(path) == tmp_path / "case.db.corrupt-2"
    assert moved.read_bytes() == data  # never overwritten


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    cells = doc.add_items(_items(tmp_path / "big slide", 3000))
    doc.add_results(FA, [(c, _cr(i, c, 0.5, members=FA.member_names)) for i, c in enumerate(cells)])
    store.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(StoreError) as exc:
        CaseStore.open(path).load()
    assert exc.value.kind == "damaged" and "\n" not in str(exc.value)
    kept = path.read_bytes()
    moved = move_aside(path)
    assert moved.read_bytes() == kept


def test_header_only_and_garbage_after_header(tmp_path):
    path = tmp_path / "short.db"
    path.write_bytes(schema_mod.SQLITE_MAGIC + b"\0" * 20)
    with pytest.raises(StoreError, match="truncated"):
        CaseStore.open(path)
    path.write_bytes(schema_mod.SQLITE_MAGIC + os.urandom(4096))
    with pytest.raises(StoreError):
        CaseStore.open(path)


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE patients(name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a LeukoScan case file"):
        CaseStore.open(path)
    with pytest.raises(StoreError, match="no such case file"):
        CaseStore.open(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "case.db"
    CaseStore.open(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 7")
    con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer LeukoScan") as exc:
        CaseStore.open(path)
    assert exc.value.kind == "newer" and "version 7" in str(exc.value)
    assert path.read_bytes() == before


def test_migration_mechanism(tmp_path, monkeypatch):
    # the mechanism, on a version-1 file with a stand-in version 2 (the real v1 -> v2: test_case_signoff.py)
    monkeypatch.setattr(schema_mod, "MIGRATIONS", schema_mod.MIGRATIONS[:1])
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = _build(tmp_path, store)
    store.close()
    assert schema_mod.schema_version() == 1

    def v2(conn):
        schema_mod._migrate_v2(conn)  # load() reads its tables
        conn.execute("CREATE TABLE stand_in(id INTEGER PRIMARY KEY, case_id INTEGER REFERENCES cases, who TEXT)")

    def broken(conn):
        conn.execute("CREATE TABLE half_done(x)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(schema_mod, "MIGRATIONS", [*schema_mod.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="left at version 1"):
        CaseStore.open(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    assert not con.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall()  # rolled back
    con.close()

    monkeypatch.setattr(schema_mod, "MIGRATIONS", [*schema_mod.MIGRATIONS[:1], v2])
    upgraded = CaseStore.open(path)
    assert upgraded.version == 2 and upgraded.meta()["schema_version"] == "2"
    assert _state(upgraded.load())["cells"] == _state(doc)["cells"]  # the data survive the upgrade
    upgraded.close()
    fresh = CaseStore.open(tmp_path / "fresh.db")  # an empty file goes 0 -> 1 -> 2
    assert fresh.version == 2
    fresh.close()
    con = sqlite3.connect(tmp_path / "fresh.db")
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'stand_in'").fetchone()[0] == 1
    con.close()
    monkeypatch.setattr(schema_mod, "MIGRATIONS", schema_mod.MIGRATIONS[:1])
    with pytest.raises(StoreError, match="newer"):
        CaseStore.open(path)


# ------------------------------------------------------------------------------------------ writer


def _second_batch_fails(tmp_path, monkeypatch, exc: Exception):
    """A store whose second write of results raises ``exc``; three batches of 10 results sent to it.
    Returns (store, document, cells, messages the store reported)."""
    store = CaseStore.open(tmp_path / "case.db")
    messages = []
    real = writer_mod.WRITES[PutResults]
    calls = []

    def failing(conn, op):
        calls.extend(op.pairs[:1])
        if len(calls) == 2:  # the second batch of results
            raise exc
        real(conn, op)

    monkeypatch.setitem(writer_mod.WRITES, PutResults, failing)
    doc = CaseDocument()
    store.attach(doc, on_error=messages.append)
    cells = doc.add_items(_items(tmp_path / "s", 30))
    doc.set_model(FB)
    for k in range(3):
        doc.add_results(FB, [(c, _cr(i, c, 0.2)) for i, c in enumerate(cells[10 * k : 10 * k + 10])])
    return store, doc, cells, messages


def test_a_failed_batch_is_reported_kept_and_written_with_the_next_change(tmp_path, monkeypatch):
    """A batch that fails for a reason that may pass (disk full) is not dropped: it is written, in order,
    before the next change; the user is told once."""
    store, doc, cells, messages = _second_batch_fails(
        tmp_path, monkeypatch, sqlite3.OperationalError("database or disk is full")
    )
    doc.review(cells[:1], "ALL", "ann")
    assert store.flush(10)
    assert len(messages) == 1 and "disk is full" in messages[0] and "\n" not in messages[0]
    store.close()
    loaded = CaseStore.open(tmp_path / "case.db").load()
    assert [bool(c.results) for c in loaded.cells] == [True] * 30  # the failed batch came in with the next one
    assert loaded.cells[0].review is not None


def test_a_batch_that_can_never_be_written_is_reported_and_does_not_block_the_rest(tmp_path, monkeypatch):
    store, _doc, _cells, messages = _second_batch_fails(
        tmp_path, monkeypatch, sqlite3.IntegrityError("a bug in the batch")
    )  # not retried
    assert store.flush(10)
    assert len(messages) == 1 and "a bug in the batch" in messages[0]
    store.close()
    loaded = CaseStore.open(tmp_path / "case.db").load()
    assert [bool(c.results) for c in loaded.cells] == [True] * 10 + [False] * 10 + [True] * 10


KILL_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from engine.case import CaseDocument, ModelFacts
    from engine.case.store import CaseStore
    from engine.pipeline import CellResult, ScanItem

    path, n = Path(sys.argv[1]), int(sys.argv[2])
    facts = ModelFacts("ens", "1", "card", 0.5, 0.1, ("a", "b"))
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    root = path.parent / "slide"
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(n)])
    for b in range(0, n, 64):
        chunk = cells[b:b + 64]
        doc.add_results(facts, [(c, CellResult(i, c.path, root, ".", c.file, "s" * 64, "ok", "", 0.3,
                                                {"a": 0.2, "b": 0.4}, False, "")) for i, c in enumerate(chunk)])
        if b // 64 < 20:
            store.flush()
            print(b // 64 + 1, flush=True)  # batches committed so far
    store.flush()
    print("done", flush=True)
""")


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_kill_9_loses_at_most_the_batch_in_flight(tmp_path):
    path = tmp_path / "case.db"
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    p = subprocess.Popen(
        [sys.executable, str(script), str(path), str(64 * 4000)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    committed = 0
    try:
        for line in p.stdout:
            if line.strip() == "20":
                committed = 20
                time.sleep(0.3)  # batches are now written as fast as they come
                break
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(30)
    assert committed == 20 and p.returncode == -signal.SIGKILL
    store = CaseStore.open(path, create=False)  # passes quick_check
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    n_results = con.execute("SELECT count(*) FROM results").fetchone()[0]
    con.close()
    assert n_results >= 20 * 64 and n_results % 64 == 0  # whole batches only
    assert n_results < 64 * 4000, "the child finished before it was killed: nothing was tested"
    doc = store.load()
    assert sum(c.results != {} for c in doc.cells) == n_results
    store.close()


# ------------------------------------------------------------------------------------------ changed images


def test_changed_image_marks_the_review_stale(tmp_path):
    root = tmp_path / "slide"
    root.mkdir()
    files = []
    for i in range(4):
        f = root / f"c{i}.bmp"
        f.write_bytes(bytes([i]) * (100 + i))
        files.append(f)
    path = tmp_path / "case.db"
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    cells = doc.add_items([ScanItem(f, root, ".") for f in files])
    doc.set_model(FB)
    doc.add_results(
        FB, [(c, _cr(i, c, 0.9, sha=hashlib.sha256(c.path.read_bytes()).hexdigest())) for i, c in enumerate(cells)]
    )
    doc.review(cells, "HEM", "ann")
    store.close()

    files[0].write_bytes(b"another image entirely")  # content changed
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # only touched
    files[2].unlink()  # missing: not "changed"

    store = CaseStore.open(path)
    doc = store.load()
    store.attach(doc)
    keys = store.changed_files()
    assert keys == [str(files[0]), str(files[1])]
    changed = rehash_changed(doc, keys, store)
    assert changed == [doc.cell(str(files[0]))]
    assert store.changed_files() == [str(files[0])]  # the touched one is not re-hashed again
    assert doc.content_changed(changed) == changed
    c0 = doc.cell(str(files[0]))
    assert c0.review is None and c0.stale is not None and c0.stale.label == "HEM" and c0.result is None
    assert doc.set_model(FB) == [c0]  # to be classified again
    store.close()

    loaded = CaseStore.open(path).load()
    l0 = loaded.cell(str(files[0]))
    assert l0.review is None and l0.results == {}
    assert all(loaded.cell(str(f)).review is not None for f in files[1:])
    stale = [r for r in review_history_rows(path) if r["action"] == "stale"]
    assert [(r["path"], r["old"], r["new"]) for r in stale] == [(str(files[0]), "HEM", "")]


# ------------------------------------------------------------------------------------------ CLI


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_classify_store_then_export_gives_the_same_report(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress", "--batch-size", "3"]
    db = tmp_path / "case.db"
    plain, stored, exported = tmp_path / "plain.csv", tmp_path / "stored.csv", tmp_path / "exported.csv"
    assert main(["classify", str(cells_dir), "--out", str(plain), "--summary", str(tmp_path / "ps.csv"), *common]) == 0
    assert main(["classify", str(cells_dir), "--out", str(stored), "--store", str(db), *common]) == 0
    err = capsys.readouterr().err
    assert "0 of 8 cells already classified" in err and f"case file: {db}" in err
    assert main(["export", str(db), "--out", str(exported), "--summary", str(tmp_path / "es.csv")]) == 0
    err = capsys.readouterr().err
    assert "8 cells in 1 folder(s)" in err and "review history (0 events)" in err
    assert _read(plain) == _read(stored) == _read(exported)
    plain_sum, export_sum = _read(tmp_path / "ps.csv"), _read(tmp_path / "es.csv")
    assert [len(r["record_head"]) for r in export_sum] == [64] and plain_sum[0]["record_head"] == ""  # the record's
    rest = [{k: v for k, v in r.items() if not k.startswith("record_")} for r in plain_sum + export_sum]
    assert rest[: len(plain_sum)] == rest[len(plain_sum) :]
    assert _read(tmp_path / "exported_reviews.csv") == []
    assert (tmp_path / "exported_reviews.csv").read_text().startswith(",".join(REVIEW_COLUMNS))

    # the batch is opened "in the app" and reviewed; a second run classifies nothing again
    store = CaseStore.open(db)
    doc = store.load()
    assert doc.model_name == "tiny_ensemble" and not doc.unclassified()
    store.attach(doc)
    doc.review(doc.cells[:2], "ALL", "ann")
    store.close()
    again = tmp_path / "again.csv"
    assert main(["classify", str(cells_dir), "--out", str(again), "--store", str(db), *common]) == 0
    assert "8 of 8 cells already classified by tiny_ensemble" in capsys.readouterr().err
    rows = _read(again)
    assert [r["reviewed_label"] for r in rows] == ["ALL", "ALL"] + [""] * 6
    assert [r["p_all"] for r in rows] == [r["p_all"] for r in _read(plain)]
    assert main(["export", str(db), "--out", str(exported)]) == 0
    assert _read(exported) == rows
    hist = _read(tmp_path / "exported_reviews.csv")
    assert [(h["new"], h["who"], h["action"]) for h in hist] == [("ALL", "ann", "review")] * 2
    assert [r.csv() for r in cell_rows(CaseStore.open(db).load())] == rows


def test_classify_store_classifies_only_what_is_missing(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    common = ["--model", "tiny_a", "--models-dir", str(tiny_models_dir), "--no-progress"]
    db = tmp_path / "case.db"
    first = sorted(cells_dir.iterdir())[:3]
    assert main(["classify", *map(str, first), "--out", str(tmp_path / "a.csv"), "--store", str(db), *common]) == 0
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "b.csv"),
                "--store",
                str(db),
                "--threshold",
                "0.3",
                *common,
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "0 of 3 cells" in err and "3 of 8 cells already classified by tiny_a" in err
    assert all(r["threshold"] == "0.3000" for r in _read(tmp_path / "b.csv"))
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "c.csv"), "--store", str(db), *common]) == 0
    assert "threshold 0.3 kept from the case file (card: 0.5)" in capsys.readouterr().err
    assert _read(tmp_path / "c.csv") == _read(tmp_path / "b.csv")


def test_cli_refuses_an_unreadable_case_file(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    db = tmp_path / "case.db"
    data = os.urandom(4096)
    db.write_bytes(data)
    rc = main(["export", str(db), "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "not an SQLite database" in err and "left as it is" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    rc = main(
        [
            "classify",
            str(cells_dir),
            "--out",
            str(tmp_path / "r.csv"),
            "--store",
            str(db),
            "--model",
            "tiny_a",
            "--models-dir",
            str(tiny_models_dir),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--store" in err and "left as it is" in err
    assert db.read_bytes() == data and not (tmp_path / "case.db.corrupt").exists()
    assert not (tmp_path / "r.csv").exists()
    assert main(["export", str(tmp_path / "nope.db"), "--out", str(tmp_path / "r.csv")]) == 2
    CaseStore.open(tmp_path / "empty.db").close()
    assert main(["export", str(tmp_path / "empty.db"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "no classified cells" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "empty.db"), "--out", str(tmp_path / "empty.db")]) == 2


# ------------------------------------------------------------------------------------------ size


def test_restore_time_of_20000_cells(tmp_path):
    path = tmp_path / "big.db"
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    cells = doc.add_items(_items(tmp_path / "slide", 20_000))
    doc.set_model(FA)
    t0 = time.perf_counter()
    for b in range(0, len(cells), 64):
        doc.add_results(
            FA, [(c, _cr(i, c, (i % 100) / 100, members=FA.member_names)) for i, c in enumerate(cells[b : b + 64], b)]
        )
    for b in range(0, 2000, 10):
        doc.review(cells[b * 10 : b * 10 + 100 : 10], "ALL" if b % 20 else "HEM", "ann")
    store.close()
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = CaseStore.open(path).load()
    restore = time.perf_counter() - t0
    print(f"\n20,000 cells: written in {write:.2f} s, restored in {restore:.2f} s")
    assert len(loaded.cells) == 20_000 and len(loaded.reviews) == 2000
    assert sum(c.result is not None for c in loaded.cells) == 20_000
    assert len(loaded.history.undo_steps) == 200
    assert restore < 10
