"""Many cases at once (issue 28 item 2): ``leukoscan-cli summary`` gives one row per case across case files, and
``classify --json`` gives per-case figures that do not depend on how the folders were given."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.case.export import export_store
from engine.case.store import CaseStore
from engine.case.summary import COLUMNS
from engine.cli import main


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _common(models: Path) -> list[str]:
    return ["--model", "tiny_a", "--models-dir", str(models), "--no-progress", "-q"]


def _two_slides(cells_dir: Path, parent: Path) -> tuple[Path, Path]:
    """The eight cells as two slides (folders) of one parent: 3 and 5 cells."""
    a, b = parent / "slide_a", parent / "slide_b"
    a.mkdir(parents=True)
    b.mkdir()
    for i, f in enumerate(sorted(cells_dir.glob("*.bmp"))):
        shutil.copy(f, (a if i < 3 else b) / f.name)
    return a, b


def _classify_json(paths, models, out: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["classify", *map(str, paths), "--out", str(out), "--json", *_common(models)]) == 0
    return json.loads(capsys.readouterr().out)


def test_classify_json_per_case_figures_do_not_depend_on_how_folders_were_given(
    cells_dir, tiny_models_dir, tmp_path, capsys
):
    a, b = _two_slides(cells_dir, tmp_path / "run")
    one_by_one = _classify_json([a, b], tiny_models_dir, tmp_path / "ab.csv", capsys)
    as_parent = _classify_json([tmp_path / "run"], tiny_models_dir, tmp_path / "p.csv", capsys)
    assert one_by_one["cases"] == as_parent["cases"]
    by = {c["folder"]: c for c in as_parent["cases"]}
    assert set(by) == {str(a), str(b)}
    assert (by[str(a)]["cells"], by[str(b)]["cells"]) == (3, 5)
    for case in as_parent["cases"]:
        assert case["included"] == case["all"] + case["hem"] == case["classified"] - case["excluded"]
        lo, hi = case["pct_all_ci"]
        assert lo <= case["pct_all"] <= hi
        assert case["pct_all"] == pytest.approx(100 * case["all"] / case["included"], abs=0.01)
    assert sum(c["cells"] for c in as_parent["cases"]) == as_parent["counts"]["cells"] == 8


def _store(paths, models, db: Path) -> Path:
    out = db.with_suffix(".csv")
    assert main(["classify", *map(str, paths), "--out", str(out), "--store", str(db), *_common(models)]) == 0
    return db


def _sign_off_all(db: Path, who: str) -> None:
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    for case in doc.cases.values():
        cells = list(doc.cells_of(case))
        doc.review([c for c in cells if c.status == "ok"], "accept", "ann")
        doc.set_sample_id(case, f"S-{Path(case.root).name}")
        doc.sign_off(case, who)
    store.close()


def test_summary_one_row_per_case_across_case_files(cells_dir, tiny_models_dir, tmp_path, capsys):
    a, b = _two_slides(cells_dir, tmp_path / "run")
    lab = tmp_path / "lab"
    (lab / "week1").mkdir(parents=True)
    signed = _store([a], tiny_models_dir, lab / "week1" / "a.leukoscan")
    _sign_off_all(signed, "Dr. Ada")
    open_ = _store([b], tiny_models_dir, lab / "b.leukoscan")
    capsys.readouterr()

    assert main(["summary", str(lab), "--json", "-o", str(tmp_path / "s.csv")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "leukoscan.summary/1" and doc["exit_code"] == 0
    assert sorted(doc["case_files"]) == sorted([str(signed), str(open_)])
    by = {Path(r["folder"]).name: r for r in doc["cases"]}
    assert set(by) == {"slide_a", "slide_b"}
    sa, sb = by["slide_a"], by["slide_b"]
    assert (sa["verdict"], sa["signed_off_by"], sa["sample_id"]) == ("signed off", "Dr. Ada", "S-slide_a")
    assert sa["signed_off_at"] and sb["signed_off_at"] == "" and sb["verdict"] in ("open", "ready for sign-off")
    assert (sa["cells"], sb["cells"]) == (3, 5) and sa["model"] == sb["model"] == "tiny_a"
    # the figures are the case's own export's
    ref = export_store(signed, tmp_path / "ref.csv", tmp_path / "ref_s.csv", mark_exported=False)
    (total,) = ref.summary
    assert (str(sa["pct_all"]), str(sa["pct_all_ci_low"]), str(sa["pct_all_ci_high"])) == (
        total["pct_all"],
        total["pct_all_ci_low"],
        total["pct_all_ci_high"],
    )
    assert sa["included"] == int(total["all"]) + int(total["hem"]) and sa["excluded"] == int(total["excluded"])
    store = CaseStore.open(signed, create=False, read_only=True)
    assert (sa["chain_rows"], sa["chain_head"]) == store.head()
    store.close()
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(COLUMNS) and len(table) == 2

    # files given one by one give the same rows; no --out and no --json: the CSV on stdout
    assert main(["summary", str(open_), str(signed), str(lab)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["folder"] for r in rows) == sorted(r["folder"] for r in table)


def test_summary_marks_a_broken_record_and_exits_4(cells_dir, tiny_models_dir, tmp_path, capsys):
    a, _b = _two_slides(cells_dir, tmp_path / "run")
    db = _store([a], tiny_models_dir, tmp_path / "a.leukoscan")
    _sign_off_all(db, "Dr. Ada")
    con = sqlite3.connect(db)
    con.execute("UPDATE signoffs SET signed_off_by='mallory'")
    con.commit()
    con.close()
    capsys.readouterr()
    assert main(["summary", str(db), "--json"]) == 4
    (row,) = json.loads(capsys.readouterr().out)["cases"]
    assert row["verdict"] == "record broken" and "signoffs" in row["verdict_detail"]


def test_summary_unreadable_file_and_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["summary", str(tmp_path / "empty")]) == 2
    assert "no case file found" in capsys.readouterr().err
    bad = tmp_path / "bad.leukoscan"
    bad.write_bytes(b"not a database at all" * 10)
    assert main(["summary", str(bad), "--json"]) == 2
    (row,) = json.loads(capsys.readouterr().out)["cases"]
    assert row["verdict"] == "unreadable" and row["verdict_detail"]
