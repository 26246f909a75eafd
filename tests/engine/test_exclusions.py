"""Review safety, item 1: a non-cell image is never counted as a blast.

Before: a plain white 450x450 image in a case of 30 HEM + 30 ALL cells got the QC mark, was called ALL 1.00 and
counted: 39 ALL of 61 = 63.9 % in the window, the summary CSV, the PDF and the CLI (honest: 30 of 60 here, 38 of
60 in the report that found it).  Now a QC failure is excluded by default until a reviewer labels it ALL or HEM,
and a reviewer can exclude any cell with a reason; % blasts, its interval and the verdict use included cells only.
"""

from __future__ import annotations

import pytest

from engine.case import CaseDocument, ModelFacts, rules
from engine.pipeline import CellResult, ScanItem
from engine.report import count_rows, summarize

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")


def _doc(tmp_path):
    doc = CaseDocument()
    root = tmp_path / "case"
    items = [ScanItem(root / f"c{i:02d}.bmp", root, ".") for i in range(60)] + [ScanItem(root / "white.png", root, ".")]
    cells = doc.add_items(items)
    doc.set_model(FACTS)
    ps = [0.95] * 30 + [0.05] * 30 + [1.0]
    qcs = [""] * 60 + ["uniform image (no detail: not a cell)"]
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, c.root, c.folder, c.file, f"sha{i}", "ok", "", p, {}, False, q))
            for i, (c, p, q) in enumerate(zip(cells, ps, qcs))
        ],
    )
    return doc


def test_a_qc_failure_is_excluded_by_default_and_not_counted(tmp_path):
    doc = _doc(tmp_path)
    (cc,) = doc.counts()
    assert (cc.all, cc.hem, cc.excluded, cc.qc) == (30, 30, 1, 1)
    assert cc.pct_blasts == pytest.approx(50.0)  # not 31 of 61
    white = doc.cells[-1]
    assert (
        white.excluded
        and white.final_label == "EXCLUDED: failed the quality check (uniform image (no detail: not a cell))"
    )
    assert not white.blast_unconfirmed  # an excluded image is not a blast call to confirm
    # a reviewer who says it is a cell after all brings it back
    doc.review([white], "HEM", "ann")
    (cc,) = doc.counts()
    assert (cc.all, cc.hem, cc.excluded) == (30, 31, 0)


def test_a_reviewer_excludes_with_a_reason_undoably(tmp_path):
    doc = _doc(tmp_path)
    dup = doc.cells[0]
    with pytest.raises(ValueError, match="reason"):
        rules.excluded_label("   ")
    with pytest.raises(ValueError, match="control"):
        rules.excluded_label("dup\x1b[2J")
    step = doc.review([dup], rules.excluded_label("duplicate"), "ann")
    assert step is not None and dup.review.label == "EXCLUDED: duplicate" and dup.excluded
    (cc,) = doc.counts()
    assert (cc.all, cc.hem, cc.excluded) == (29, 30, 2) and cc.overridden == 0
    doc.undo("ann")
    assert not dup.excluded and doc.counts()[0].all == 30


def test_the_report_rows_and_summary_csv_exclude_the_same_cells(tmp_path):
    from engine.case.export import cell_rows

    doc = _doc(tmp_path)
    doc.review([doc.cells[0]], rules.excluded_label("not a cell"), "ann")
    rows = cell_rows(doc)
    assert rows[-1].final_label.startswith("EXCLUDED: failed the quality check")
    cc = count_rows(rows)
    (s,) = summarize(rows)
    assert (cc.all, cc.hem, cc.excluded) == (29, 30, 2)
    assert (s["all"], s["hem"], s["excluded"], s["pct_all"]) == ("29", "30", "2", "49.2")
    assert (
        s["excluded_reasons"] == "not a cell: 1; failed the quality check (uniform image (no detail: not a cell)): 1"
        or "failed the quality check" in s["excluded_reasons"]
    )


def test_excluded_review_survives_the_store_and_its_chain(tmp_path):
    from engine.case.store import CaseStore

    store = CaseStore.open(tmp_path / "c.db")
    doc = _doc(tmp_path)
    store.attach(doc)
    doc.review([doc.cells[3]], rules.excluded_label("artefact"), "ann")
    store.close()
    again = CaseStore.open(tmp_path / "c.db")
    try:
        loaded = again.load()
        assert again.verify() is None
    finally:
        again.close()
    assert loaded.cells[3].review.label == "EXCLUDED: artefact" and loaded.cells[3].excluded


def test_cli_and_pdf_say_what_was_excluded(tmp_path, capsys):
    """The CLI's export line and the PDF list the excluded cells and why; % blasts counts included cells."""
    from pypdf import PdfReader

    from engine.case.store import CaseStore
    from engine.cli import main

    db = tmp_path / "c.db"
    store = CaseStore.open(db)
    doc = _doc(tmp_path)
    store.attach(doc)
    doc.review([doc.cells[0]], rules.excluded_label("duplicate"), "ann")
    store.close()
    capsys.readouterr()
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv")]) == 0
    err = capsys.readouterr().err
    assert "2 excluded from % blasts (" in err and "duplicate: 1" in err and "failed the quality check" in err
    pdf = tmp_path / "c.pdf"
    assert main(["report", str(db), "--pdf", str(pdf)]) == 0
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    assert "Blasts (ALL): 49.2 %" in text and "of 59 classified cells (2 excluded, not counted)" in text
    assert "Cells excluded from % blasts" in text and "Excluded from % blasts: " in text


def test_accepting_a_qc_failure_confirms_its_exclusion_not_a_blast(tmp_path):
    """Seen in the screenshots: walking the cells left before sign-off with Space accepted the blank frame as
    "ALL 1.00", and it was counted again.  Accept confirms what the cell shows: its exclusion."""
    doc = _doc(tmp_path)
    white = doc.cells[-1]
    doc.review([white], "accept", "ann")
    assert white.review.label.startswith("EXCLUDED: failed the quality check") and white.excluded
    (cc,) = doc.counts()
    assert (cc.all, cc.hem, cc.excluded) == (30, 30, 1)
