"""Issue 26 item 3 (engine and CLI): patients are never mixed in output.

Before: a case could be signed off with no sample id (the PDF printed "Sample ID not given" beside the signature),
one PDF held every case given to it, the CLI had no way to give a sample id, and a store named after sample
BM-H5-001 took in other cases."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from engine.case import CaseDocument, ModelFacts
from engine.case.store import CaseStore
from engine.cli import main
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts("m", "1.0", "card-m", 0.5, 0.1, (), "CPUExecutionProvider", "M")


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_sign_off_needs_a_sample_id(tmp_path):
    doc = CaseDocument()
    root = tmp_path / "incoming"
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(3)])
    doc.set_model(FACTS)
    doc.add_results(
        FACTS,
        [
            (c, CellResult(i, c.path, c.root, c.folder, c.file, f"s{i}", "ok", "", 0.1, {}, False, ""))
            for i, c in enumerate(cells)
        ],
    )
    case = doc.case_of_root(root)
    ok, why = doc.can_sign_off(case)
    assert not ok and why == "it has no sample id (a signed report names its patient: give the sample id first)"
    with pytest.raises(ValueError, match="no sample id"):
        doc.sign_off(case, "ann")
    doc.set_sample_id(case, "  BM-H5-001 ")
    assert doc.can_sign_off(case) == (True, "") and doc.sign_off(case, "ann").by == "ann"


def _two_folders(cells_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    files = sorted(cells_dir.iterdir())
    a, b = tmp_path / "patient A", tmp_path / "patient B"
    for d, part in ((a, files[:4]), (b, files[4:])):
        d.mkdir()
        for f in part:
            shutil.copy2(f, d / f.name)
    return a, b


def test_classify_takes_the_sample_id_of_one_folder(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    a, b = _two_folders(cells_dir, tmp_path)
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    out, summary = tmp_path / "r.csv", tmp_path / "s.csv"
    assert main(["classify", str(a), "--out", str(out), "--summary", str(summary), "--sample-id", "BM-9", *common]) == 0
    assert [r["sample_id"] for r in _read(summary)] == ["BM-9"]
    capsys.readouterr()
    assert main(["classify", str(a), str(b), "--out", str(out), "--sample-id", "BM-9", *common]) == 2
    assert "--sample-id names one patient: give one folder" in capsys.readouterr().err

    db = tmp_path / "case.leukoscan"
    assert main(["classify", str(a), "--out", str(out), "--store", str(db), "--sample-id", "BM-9", *common]) == 0
    store = CaseStore.open(db)
    try:
        doc = store.load()
        (case,) = doc.cases.values()
        assert case.sample_id == "BM-9"
        doc.review([c for c in doc.cells if c.status == "ok"], "accept", "ann")
        assert doc.can_sign_off(case) == (True, "")
    finally:
        store.close()
    before = db.read_bytes()
    capsys.readouterr()
    assert main(["classify", str(a), "--out", str(out), "--store", str(db), "--sample-id", "BM-2", *common]) == 6
    assert "is sample BM-9" in capsys.readouterr().err and db.read_bytes() == before


def test_a_store_named_after_a_sample_takes_no_other(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    a, b = _two_folders(cells_dir, tmp_path)
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    db = tmp_path / "BM-H5-001.leukoscan"
    out = tmp_path / "r.csv"
    assert main(["classify", str(a), "--out", str(out), "--store", str(db), "--sample-id", "BM-H5-001", *common]) == 0
    assert main(["classify", str(a), "--out", str(out), "--store", str(db), *common]) == 0  # its own folder again
    before = db.read_bytes()
    capsys.readouterr()
    assert main(["classify", str(b), "--out", str(out), "--store", str(db), *common]) == 6
    err = capsys.readouterr().err
    assert "is the case file of sample BM-H5-001" in err and str(b) in err and db.read_bytes() == before


def test_the_cli_prints_one_patient_per_pdf(cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models):
    a, b = _two_folders(cells_dir, tmp_path)
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    db = tmp_path / "session.leukoscan"
    out = tmp_path / "r.csv"
    assert main(["classify", str(a), "--out", str(out), "--store", str(db), "--sample-id", "BM-A", *common]) == 0
    assert main(["classify", str(b), "--out", str(out), "--store", str(db), "--sample-id", "BM-B", *common]) == 0
    capsys.readouterr()
    pdf = tmp_path / "case.pdf"
    assert main(["report", str(db), "--pdf", str(pdf)]) == 2
    err = capsys.readouterr().err
    assert "one PDF is one patient: 2 cases here" in err and "BM-A" in err and "BM-B" in err and not pdf.exists()
    assert main(["report", str(db), "--pdf", str(pdf), "--case", "bm-b"]) == 0
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "BM-B" in text and "BM-A" not in text
    assert main(["report", str(db), "--pdf", str(pdf), "--case", "nobody"]) == 2


def test_the_summary_names_each_folder_and_a_pdf_from_it_the_signoff_basis(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    """Issue 26 item 13 (engine side): the summary's ``folder`` was "." for every case, and a PDF printed from a
    CSV left out what the sign-off rested on (its basis: model, threshold, the images)."""
    a, b = _two_folders(cells_dir, tmp_path)
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    db = tmp_path / "session.leukoscan"
    out = tmp_path / "r.csv"
    assert main(["classify", str(a), "--out", str(out), "--store", str(db), "--sample-id", "BM-A", *common]) == 0
    assert main(["classify", str(b), "--out", str(out), "--store", str(db), "--sample-id", "BM-B", *common]) == 0
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    case = doc.cases[str(a)]
    doc.review([c for c in doc.cells_of(case) if c.status == "ok"], "accept", "ann")
    so = doc.sign_off(case, "Dr. Ada")
    store.close()
    summary = tmp_path / "final_summary.csv"
    assert main(["export", str(db), "--out", str(tmp_path / "final.csv"), "--summary", str(summary)]) == 0
    rows = _read(summary)
    assert [r["folder"] for r in rows] == [str(a), str(b)]
    assert [r["signoff_basis"] for r in rows] == [so.basis, ""] and "cells 4, set " in so.basis
    a_rows = [r for r in _read(tmp_path / "final.csv") if r["root"] == str(a)]
    with open(tmp_path / "a.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(a_rows[0]))
        w.writeheader()
        w.writerows(a_rows)
    shutil.copy(summary, tmp_path / "a_summary.csv")
    pdf = tmp_path / "a.pdf"
    assert main(["report", str(tmp_path / "a.csv"), "--pdf", str(pdf)]) == 0
    from pypdf import PdfReader

    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    assert "signed off by Dr. Ada" in text and so.basis.split(";")[-1].strip() in text
