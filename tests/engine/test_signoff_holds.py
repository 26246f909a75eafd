"""Case record integrity, item 2: a signed-off verdict cannot move.

Before: sign off a case, copy two more images into its folder and run ``classify DIR --store``: the summary
became 15/22 = 68.2 % (or, replacing an unreviewed ALL image by a HEM one, 13/20 = 65.0 %) while the CSV and PDF
still said "signed off by ...", and ``case_events`` held only the sign-off.  Now the CLI refuses (exit 5) unless
``--reopen REASON``; the app reopens automatically with a logged reason; and every report checks that the images
are the ones the sign-off covered.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.case.store import CaseStore
from engine.cli import main


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _signed_case(cells_dir, tiny_models_dir, tmp_path):
    case = tmp_path / "case"
    shutil.copytree(cells_dir, case)
    spare = sorted(case.glob("*"))[-2:]
    extra = tmp_path / "extra"
    extra.mkdir()
    for f in spare:
        shutil.move(f, extra / f.name)
    db = tmp_path / "case.db"
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(["classify", str(case), "--out", str(tmp_path / "a.csv"), "--store", str(db), *common]) == 0
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    cells = [c for c in doc.cells if c.status == "ok"]
    doc.review(cells, "accept", "ann")
    (c,) = doc.cases.values()
    doc.set_sample_id(c, "BM-1")
    doc.sign_off(c, "Dr. Ada")
    store.close()
    return case, extra, db, common


def test_cli_refuses_new_images_in_a_signed_off_case_unless_reopened(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    case, extra, db, common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    for f in extra.iterdir():
        shutil.copy2(f, case / f.name)
    before = db.read_bytes()
    capsys.readouterr()
    rc = main(["classify", str(case), "--out", str(tmp_path / "b.csv"), "--store", str(db), *common])
    err = capsys.readouterr().err
    assert rc == 5 and "signed-off case(s) would change" in err and "2 new image(s)" in err and "--reopen" in err
    assert db.read_bytes() == before  # nothing written
    assert (
        main(
            [
                "classify",
                str(case),
                "--out",
                str(tmp_path / "c.csv"),
                "--store",
                str(db),
                "--reopen",
                "two late images",
                *common,
            ]
        )
        == 0
    )
    store = CaseStore.open(db)
    try:
        events = store.case_events()
        doc = store.load()
    finally:
        store.close()
    assert events[-1]["action"] == "reopen" and events[-1]["text"].startswith("two late images")
    assert next(iter(doc.cases.values())).signoff is None


def test_the_app_rule_reopens_a_signed_off_case_when_an_image_is_added(
    cells_dir, tiny_models_dir, tmp_path, _no_bundled_models
):
    from engine.pipeline import ScanItem

    case, extra, db, _common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    (c,) = doc.cases.values()
    assert c.signoff is not None and doc.signoff_mismatch(c) == ""
    f = next(extra.iterdir())
    shutil.copy2(f, case / f.name)
    doc.add_items([ScanItem(case / f.name, case, ".")])
    assert c.signoff is None
    events = store.case_events()
    store.close()
    assert events[-1]["by"] == "LeukoScan (automatic)" and "new image(s) added after the sign-off" in events[-1]["text"]


def test_reports_say_in_red_when_the_images_are_not_the_ones_signed_off(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    """A store changed behind LeukoScan's back (a cell row deleted with sqlite3): the sign-off no longer covers the
    images, and the summary CSV and the PDF say so instead of presenting the old sign-off as valid."""
    import sqlite3

    from engine.report import signoff_check, summarize

    _case, _extra, db, _common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    store = CaseStore.open(db)
    doc = store.load()
    store.close()
    from engine.case.export import cell_rows, pdf_signoffs

    rows = cell_rows(doc)
    so = pdf_signoffs(doc)
    root = rows[0].root
    assert signoff_check(so[root], rows) == ""
    fewer = rows[1:]  # one image gone from what the report covers
    assert "not the ones signed off" in signoff_check(so[root], fewer)
    (s,) = summarize(fewer, signoffs=so)
    assert "signed: 6 images" in s["signoff_check"] and "now: 5 images" in s["signoff_check"]
    from engine.pdf_report import render_case_pdf

    pdf = tmp_path / "moved.pdf"
    pdf.write_bytes(render_case_pdf(fewer, signoffs=so))
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    assert "SIGN-OFF DOES NOT COVER THIS REPORT" in text
    del sqlite3


def test_cli_refuses_a_replaced_image_in_a_signed_off_case(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    import os

    case, extra, db, common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    victim = sorted(case.iterdir())[0]
    other = next(extra.iterdir())
    victim.write_bytes(other.read_bytes())  # same name, other pixels
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    capsys.readouterr()
    rc = main(["classify", str(case), "--out", str(tmp_path / "b.csv"), "--store", str(db), *common])
    err = capsys.readouterr().err
    assert rc == 5 and "1 changed image(s)" in err


def test_a_csv_report_never_asserts_the_opposite_of_the_record(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    """Review-safety issue, item 5: ``report REPORT.csv --pdf`` of a signed-off case printed "Sample ID: not
    given" and, in red, "not signed off".  With the summary beside the CSV the PDF says what the record says
    (the same as from the store); without it, "unknown (not in this CSV ...)"."""
    _case, _extra, db, _common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    assert (
        main(["export", str(db), "--out", str(tmp_path / "r.csv"), "--summary", str(tmp_path / "r_summary.csv")]) == 0
    )

    def text(pdf):
        return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)

    assert main(["report", str(tmp_path / "r.csv"), "--pdf", str(tmp_path / "a.pdf")]) == 0
    assert main(["report", str(db), "--pdf", str(tmp_path / "b.pdf")]) == 0
    a, b = text(tmp_path / "a.pdf"), text(tmp_path / "b.pdf")
    assert "signed off by Dr. Ada" in a and "signed off by Dr. Ada" in b and "not signed off" not in a
    (tmp_path / "r_summary.csv").unlink()
    assert main(["report", str(tmp_path / "r.csv"), "--pdf", str(tmp_path / "c.pdf")]) == 0
    c = text(tmp_path / "c.pdf")
    assert "unknown (not in this CSV" in c and "not signed off" not in c and "not given" not in c


def test_export_keeps_a_closed_record_closed(cells_dir, tiny_models_dir, tmp_path, _no_bundled_models):
    """Case-record issue, item 5: ``leukoscan-cli export`` cleared ``closed_at``, so the app then offered a
    normally closed store for Restore."""
    _case, _extra, db, _common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    doc.note_closed("2026-12-01T10:00:00Z")
    store.close()
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv")]) == 0
    store = CaseStore.open(db)
    try:
        assert store.meta().get("closed_at") == "2026-12-01T10:00:00Z"
    finally:
        store.close()


def test_an_interrupted_run_is_reported_as_incomplete(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    """Case-record issue, item 5: after an interrupted run (64 of 100 stored) ``export`` exited 0 and the PDF said
    "90.6 % of 64 classified cells" without a word about the 36 images never classified."""
    from engine.case import ModelFacts
    from engine.case.headless import HeadlessRun
    from engine.pipeline import classify, scan
    from engine.registry import Registry

    clf = Registry([tiny_models_dir]).load("tiny_ensemble")
    items = scan([cells_dir])
    db = tmp_path / "c.db"
    run = HeadlessRun(CaseStore.open(db), ModelFacts.of(clf), items)
    for res in list(classify(run.todo, clf))[:5]:  # stopped after 5 of 8
        run.add(res)
    assert run.finish() == []
    capsys.readouterr()
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv"), "--summary", str(tmp_path / "s.csv")]) == 0
    assert "INCOMPLETE: 3 of 8 images not classified" in capsys.readouterr().err
    rows = _read(tmp_path / "e.csv")
    assert len(rows) == 8 and sum(r["status"] == "pending" for r in rows) == 3
    (s,) = _read(tmp_path / "s.csv")
    assert (s["cells"], s["classified"], s["not_classified"]) == ("8", "5", "3")
    assert main(["report", str(db), "--pdf", str(tmp_path / "c.pdf")]) == 0
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(tmp_path / "c.pdf").pages)
    assert "INCOMPLETE: 5 of 8 images classified, 3 not classified" in text


def test_reading_commands_open_the_store_read_only(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    """Case-record issue, item 5: a store on read-only media could not be reported ("attempt to write a readonly
    database"): reading commands open it with SQLite's mode=ro and write nothing, not even -wal/-shm files."""
    _case, _extra, db, _common = _signed_case(cells_dir, tiny_models_dir, tmp_path)
    before = db.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    assert main(["verify", str(db)]) == 0
    assert main(["report", str(db), "--pdf", str(tmp_path / "r.pdf")]) == 0
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv"), "--no-bookkeeping"]) == 0
    assert db.read_bytes() == before
    new = sorted(p.name for p in tmp_path.iterdir())
    # no lock and no data written (a WAL reader may leave SQLite's empty -wal and its -shm index beside the file)
    assert [n for n in new if n not in listing and not n.endswith(("-shm", "-wal"))] == [
        "e.csv",
        "e_reviews.csv",
        "r.pdf",
    ]
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    store = CaseStore.open(db, read_only=True)
    try:
        import sqlite3

        with pytest.raises(sqlite3.OperationalError):
            store._conn.execute("DELETE FROM meta")
    finally:
        store.close()


def test_an_unreadable_summary_beside_a_csv_report_is_ignored(cells_dir, tiny_models_dir, tmp_path, capsys):
    """The summary beside a per-cell CSV is optional: one that cannot be read means "unknown", not a crash."""
    csv_path = tmp_path / "r.csv"
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(csv_path),
                "--model",
                "tiny_ensemble",
                "--models-dir",
                str(tiny_models_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    (tmp_path / "r_summary.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert main(["report", str(csv_path), "--pdf", str(tmp_path / "r.pdf"), "--models-dir", str(tiny_models_dir)]) == 0
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(tmp_path / "r.pdf").pages)
    assert "unknown (not in this CSV" in text
