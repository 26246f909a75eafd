"""CSV reports: exact columns and formats, summary counts, atomic writes."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from engine import report as report_mod
from engine.pipeline import CellResult, classify, scan
from engine.registry import Registry
from engine.report import (
    CELL_COLUMNS,
    SUMMARY_COLUMNS,
    Review,
    cell_row,
    neutralise,
    read_cell_report,
    real_folder,
    restore,
    summarize,
    write_cell_report,
    write_summary,
)
from engine.stats import wilson_interval

BASE = [
    "path",
    "folder",
    "file",
    "sha256",
    "status",
    "error",
    "prediction",
    "p_all",
    "flagged",
    "model",
    "model_version",
    "threshold",
    "reviewed_label",
    "reviewer",
    "reviewed_at",
]


def _res(
    p_all,
    status="ok",
    folder=".",
    root="/r",
    members=None,
    disagree=False,
    i=0,
    file=None,
    qc="",
    error="empty file (0 bytes)",
):
    file = file or f"c{i}.bmp"
    return CellResult(
        index=i,
        path=Path(root) / folder / file,
        root=Path(root),
        folder=folder,
        file=file,
        sha256="ab" * 32,
        status=status,
        error="" if status == "ok" else error,
        p_all=p_all,
        member_p=members or {},
        members_disagree=disagree,
        qc=qc,
    )


@pytest.fixture
def clf(tiny_models_dir):
    return Registry([tiny_models_dir]).load("tiny_a")


@pytest.fixture
def ens(tiny_models_dir):
    return Registry([tiny_models_dir]).load("tiny_ensemble")


def test_column_order():
    assert list(CELL_COLUMNS[: len(BASE)]) == BASE
    assert list(CELL_COLUMNS[len(BASE) :]) == [
        "final_label",
        "default_threshold",
        "provider",
        "root",
        "qc",
        "review_model_label",
        "cell_id",
        "in_review_band",
        "flag_reasons",
        "device_fallback",
    ]
    assert list(SUMMARY_COLUMNS[:7]) == ["folder", "cells", "classified", "errors", "all", "hem", "pct_all"]
    assert list(SUMMARY_COLUMNS[7:]) == [
        "pct_all_ci_low",
        "pct_all_ci_high",
        "review_open",
        "reviewed",
        "root",
        "error_reasons",
        "flagged",
        "overridden",
        "qc",
        "signed_off_by",
        "signed_off_at",
        "comment",
        "sample_id",
        "excluded",
        "excluded_reasons",
        "signoff_check",
        "not_classified",
        "record_rows",
        "record_head",
        "signoff_basis",
    ]


def test_cell_row_values(clf):
    row = cell_row(_res(0.123456), clf).csv()
    assert list(row) == list(CELL_COLUMNS)
    assert row["p_all"] == "0.1235" and row["prediction"] == "HEM" and row["flagged"] == "false"
    assert row["threshold"] == row["default_threshold"] == "0.5000"
    assert row["model"] == "tiny_a" and row["model_version"] == "0.0-test" and row["provider"] == "CPUExecutionProvider"
    assert row["final_label"] == "HEM" and row["reviewed_label"] == row["reviewer"] == row["reviewed_at"] == ""
    assert row["path"] == str(Path("/r/c0.bmp")) and row["folder"] == "." and row["root"] == str(Path("/r"))


def test_user_threshold_and_review(clf):
    row = cell_row(
        _res(0.3), clf, threshold=0.25, review=Review("HEM", "J. Doe", datetime(2026, 11, 26, 14, 3, 5))
    ).csv()
    assert row["prediction"] == "ALL" and row["flagged"] == "true"  # |0.3-0.25| < 0.1
    assert row["threshold"] == "0.2500" and row["default_threshold"] == "0.5000"
    assert (row["reviewed_label"], row["reviewer"], row["reviewed_at"]) == ("HEM", "J. Doe", "2026-11-26T14:03:05")
    assert row["final_label"] == "HEM"
    with pytest.raises(ValueError):
        Review("maybe")


def test_error_row(clf):
    row = cell_row(_res(None, status="error"), clf, review=Review("ALL")).csv()
    assert row["status"] == "error" and row["error"] == "empty file (0 bytes)"
    assert row["prediction"] == row["p_all"] == row["final_label"] == row["reviewed_label"] == ""
    assert row["flagged"] == "false"


def test_ensemble_member_columns(ens):
    row = cell_row(_res(0.55, members={"tiny_a": 0.2, "tiny_b": 0.9}, disagree=True), ens).csv()
    assert list(row)[-2:] == ["p_all_tiny_a", "p_all_tiny_b"]
    assert row["p_all_tiny_a"] == "0.2000" and row["p_all_tiny_b"] == "0.9000"
    assert row["flagged"] == "true" and row["prediction"] == "ALL"


@pytest.mark.parametrize(
    "p, disagree, qc, band, reasons",
    [
        (0.123, False, "", "false", ""),  # far from the threshold: not flagged
        (0.45, False, "", "true", "review_band"),
        (0.95, False, "uniform image (no detail: not a cell)", "false", "qc"),  # flagged, outside the band
        (0.95, True, "", "false", "model_disagreement"),
        (0.55, True, "too small", "true", "review_band;qc;model_disagreement"),
    ],
)
def test_flag_reasons_say_why_and_in_review_band_is_the_band_alone(ens, p, disagree, qc, band, reasons):
    """flagged mixes three reasons; flag_reasons names them and in_review_band is the band alone (issue 28 item 3),
    all three from the one rule (engine.pipeline.flag_reasons, margin 0.1 around 0.5 on the tiny cards)."""
    row = cell_row(_res(p, members={"tiny_a": p, "tiny_b": p}, disagree=disagree, qc=qc), ens).csv()
    assert (row["in_review_band"], row["flag_reasons"]) == (band, reasons)
    assert row["flagged"] == ("true" if reasons else "false")


def test_error_and_pending_rows_have_no_flag_reasons(clf):
    row = cell_row(_res(None, status="error"), clf).csv()
    assert (row["in_review_band"], row["flag_reasons"]) == ("false", "")
    pending = report_mod.pending_row("/r/x.bmp", "/r", ".", "x.bmp", clf).csv()
    assert (pending["in_review_band"], pending["flag_reasons"], pending["flagged"]) == ("false", "", "false")


def test_flag_counts_count_each_reason_of_classified_rows(clf):
    rows = [
        cell_row(_res(0.45, i=0), clf),
        cell_row(_res(0.55, qc="too small", i=1), clf),
        cell_row(_res(0.95, qc="too small", i=2), clf),
        cell_row(_res(0.1, i=3), clf),
        cell_row(_res(None, status="error", i=4), clf),
    ]
    assert report_mod.flag_counts(rows) == {"in_review_band": 2, "review_band": 2, "qc": 2, "model_disagreement": 0}


def test_summarize_counts_final_labels_per_root_and_folder(clf):
    rows = [
        cell_row(_res(0.9, i=0), clf),
        cell_row(_res(0.8, i=1), clf, review=Review("HEM")),  # reviewer overrides ALL -> HEM
        cell_row(_res(0.1, i=2), clf),
        cell_row(_res(0.45, i=3), clf),  # needs review
        cell_row(_res(None, status="error", i=4), clf),
        cell_row(_res(0.9, folder="sub", i=5), clf),
        cell_row(_res(0.9, root="/other", i=6), clf),  # another PATH, also folder "."
        cell_row(_res(None, status="error", root="/empty", i=7), clf),
    ]
    s = summarize(rows)
    assert [(r["root"], r["folder"]) for r in s] == [
        (str(Path("/r")), "."),
        (str(Path("/r")), "sub"),
        (str(Path("/other")), "."),
        (str(Path("/empty")), "."),
    ]
    first = s[0]
    assert {k: first[k] for k in SUMMARY_COLUMNS if k != "root"} == {
        "folder": ".",
        "cells": "5",
        "classified": "4",
        "errors": "1",
        "all": "1",
        "hem": "3",
        "pct_all": "25.0",
        "pct_all_ci_low": "4.6",
        "pct_all_ci_high": "69.9",
        "review_open": "1",
        "reviewed": "1",
        "error_reasons": "empty file (0 bytes)",
        "flagged": "1",
        "overridden": "1",
        "qc": "0",
        "signed_off_by": "",
        "signed_off_at": "",
        "comment": "",
        "sample_id": "",
        "excluded": "0",
        "excluded_reasons": "",
        "signoff_check": "",
        "not_classified": "0",
        "record_rows": "",  # not from a case store: no record to name
        "record_head": "",
        "signoff_basis": "",
    }
    assert s[1]["error_reasons"] == ""
    assert (s[1]["pct_all"], s[1]["pct_all_ci_low"], s[1]["pct_all_ci_high"]) == ("100.0", "20.7", "100.0")
    assert s[3]["pct_all"] == s[3]["pct_all_ci_low"] == s[3]["pct_all_ci_high"] == "" and s[3]["classified"] == "0"


def test_review_open_counts_only_flagged_cells_not_yet_reviewed(clf):
    """One rule for window and report: a reviewed flagged cell is flagged, but no longer needs review; an
    accepted cell stays accepted when a later threshold gives another class (not an override)."""
    rows = [
        cell_row(_res(0.45, i=0), clf),  # flagged, open
        cell_row(_res(0.46, i=1), clf, review=Review("HEM", "t", "", model_label="HEM")),  # flagged, reviewed
        cell_row(_res(0.55, i=2), clf, 0.6, review=Review("ALL", "t", "", model_label="ALL")),  # accepted at 0.5
    ]
    s = summarize(rows)[0]
    assert (s["flagged"], s["review_open"], s["reviewed"]) == ("3", "1", "2")
    assert rows[2].prediction == "HEM" and s["overridden"] == "0"


def test_write_and_read_back_unicode(tmp_path, cells_dir, ens):
    (cells_dir / "UID_11_10_1_all.bmp").rename(cells_dir / 'Zelle ñ 細胞, "1".bmp')
    rows = [cell_row(r, ens) for r in classify(scan([cells_dir]), ens)]
    out = write_cell_report(tmp_path / "r.csv", rows)
    back = read_cell_report(out)
    assert [r.csv() for r in back] == [r.csv() for r in rows]
    with open(out, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == list(CELL_COLUMNS) + ["p_all_tiny_a", "p_all_tiny_b"]
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")
    s = write_summary(tmp_path / "s.csv", summarize(rows))
    assert report_mod.read_csv(s)[0]["cells"] == "8"


def test_write_is_atomic(tmp_path, clf, monkeypatch):
    target = tmp_path / "r.csv"
    target.write_text("previous report\n")
    rows = [cell_row(_res(0.9, i=i), clf) for i in range(5)]

    class Boom(csv.DictWriter):
        def writerow(self, row):
            if row["file"] == "c3.bmp":
                raise OSError(28, "No space left on device")
            return super().writerow(row)

    monkeypatch.setattr(report_mod.csv, "DictWriter", Boom)
    with pytest.raises(OSError):
        write_cell_report(target, rows)
    assert target.read_text() == "previous report\n"
    assert os.listdir(tmp_path) == ["r.csv"]  # no temp file left behind
    monkeypatch.undo()
    write_cell_report(target, rows)
    assert len(read_cell_report(target)) == 5
    if os.name == "posix":
        assert (target.stat().st_mode & 0o777) != 0o600  # an ordinary file, not the temp file's mode


@pytest.mark.skipif(os.name != "posix" or os.uname().sysname == "Darwin", reason="Linux allows non-UTF-8 names")
def test_non_utf8_file_name_does_not_break_the_report(tmp_path, cells_dir, clf):
    src = next(cells_dir.glob("*.bmp"))
    bad = os.fsencode(cells_dir) + b"/cell_\xff.bmp"
    os.rename(os.fsencode(src), bad)
    rows = [cell_row(r, clf) for r in classify(scan([cells_dir]), clf)]
    out = write_cell_report(tmp_path / "r.csv", rows)
    back = read_cell_report(out)
    assert len(back) == 8 and any("cell_\\udcff.bmp" in r.result.file for r in back)
    assert all(r.status == "ok" for r in back)


def test_qc_reason_is_a_column_and_flagged(clf):
    row = cell_row(_res(0.95, qc="uniform image (no detail: not a cell)"), clf).csv()
    assert row["qc"] == "uniform image (no detail: not a cell)" and row["flagged"] == "true"
    assert row["prediction"] == "ALL"  # the score is kept; the cell is flagged, not hidden
    assert cell_row(_res(0.95), clf).qc == ""


def test_summary_lists_a_few_distinct_error_reasons(clf):
    reasons = ["empty file (0 bytes)", "image file is truncated", "not a readable image", "x", "y"]
    rows = [cell_row(_res(None, status="error", error=e, i=i), clf) for i, e in enumerate(reasons + reasons)]
    assert summarize(rows)[0]["error_reasons"] == (
        "empty file (0 bytes); image file is truncated; not a readable image (+2 more)"
    )


HOSTILE = ["=cmd|' /C calc'!A0.bmp", "+SUM(1,2).bmp", "-2+3.bmp", "@SUM(1).bmp", "\t=1.bmp", "\r=1.bmp"]


@pytest.mark.parametrize(
    "value",
    [
        *HOSTILE,
        "'=already quoted",
        "''=1",
        "'-1",
        "'plain",
        "'",
        "",
        "-1.5",
        "+2",
        "1e-3",
        "-inf",
        "-",
        "=",
        "normal.bmp",
    ],
)
def test_neutralise_is_reversible(value):
    assert restore(neutralise(value)) == value


def test_neutralise_prefixes_formulas_only():
    for v in HOSTILE:
        assert neutralise(v) == "'" + v
    for v in ["0.1235", "-1.5", "+2", "12", "1e-3", "cell.bmp", "/data/=x.bmp", "'plain"]:
        assert neutralise(v) == v
    assert neutralise("-inf") == "'-inf"  # not a plain number: a spreadsheet may evaluate it


def _formula_rows(clf):
    rows = [
        cell_row(
            _res(0.9, folder=f, root=f"/{f}", file=name, i=i),
            clf,
            review=Review("ALL", reviewer="=1+2", reviewed_at="2026-01-01T10:00:00"),
        )
        for i, (f, name) in enumerate(zip(["+case", "-case", "@case", "=case", "\tcase", "\rcase"], HOSTILE))
    ]
    rows.append(cell_row(_res(None, status="error", file='=HYPERLINK("http://x").bmp', error="-bad", i=9), clf))
    return rows


def test_formula_cells_are_neutralised_in_a_real_csv_round_trip(tmp_path, clf):
    rows = _formula_rows(clf)
    out = write_cell_report(tmp_path / "r.csv", rows)
    summ = write_summary(tmp_path / "s.csv", summarize(rows))
    with open(out, encoding="utf-8", newline="") as fh:
        raw = list(csv.DictReader(fh))
    text_cols = ["path", "folder", "file", "reviewer", "root", "error"]
    for r in raw:
        for col in text_cols:
            assert not r[col] or r[col][0] not in "=+-@\t\r", (col, r[col])
    assert raw[0]["file"] == "'" + HOSTILE[0] and raw[0]["reviewer"] == "'=1+2" and raw[-1]["error"] == "'-bad"
    assert [r["p_all"] for r in raw[:-1]] == ["0.9000"] * 6 and raw[0]["threshold"] == "0.5000"  # numbers stay numbers
    with open(summ, encoding="utf-8", newline="") as fh:
        sraw = list(csv.DictReader(fh))
    assert [r["folder"] for r in sraw[:6]] == [real_folder(r.root, r.folder) for r in rows[:6]]  # the folder
    assert all(not r["folder"] or r["folder"][0] not in "=+-@\t\r" for r in sraw)
    assert all(r["cells"] == "1" and r["classified"] in ("0", "1") for r in sraw)  # counts are never prefixed
    assert sraw[-1]["error_reasons"] == "'-bad"
    # reading back (e.g. to resume a review) gives the original values
    assert [r.csv() for r in read_cell_report(out)] == [r.csv() for r in rows]
    assert report_mod.read_csv(summ) == [{**r, "folder": real_folder(r["root"], r["folder"])} for r in summarize(rows)]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_opens_formula_cells_as_text(tmp_path, clf):
    rows = _formula_rows(clf)
    out = write_cell_report(tmp_path / "r.csv", rows)
    conv = tmp_path / "conv"
    p = subprocess.run(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
            "--convert-to",
            "csv",
            "--outdir",
            str(conv),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.returncode == 0, p.stderr
    with open(conv / "r.csv", encoding="utf-8", errors="replace", newline="") as fh:
        back = list(csv.DictReader(fh))
    assert [r["reviewer"] for r in back[:6]] != ["3"] * 6  # "=1+2" was not evaluated
    assert all("1+2" in r["reviewer"] for r in back[:6])


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (5, 10, 23.7, 76.3),  # symmetric around one half
        (0, 20, 0.0, 16.1),  # no blast seen: the interval still reaches 16 %, not 0..0
        (20, 20, 83.9, 100.0),
        (1, 4, 4.6, 69.9),
        (300, 800, 34.2, 40.9),  # same 37.5 % as 3/8, much narrower
        (3, 8, 13.7, 69.4),
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert (round(lo * 100, 1), round(hi * 100, 1)) == (low, high)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_edge_cases():
    assert wilson_interval(0, 0) is None
    lo90, hi90 = wilson_interval(5, 10, z=1.644854)
    lo95, hi95 = wilson_interval(5, 10)
    assert lo95 < lo90 < 0.5 < hi90 < hi95
    for k, n in ((-1, 5), (6, 5), (1.5, 5), (True, 5)):
        with pytest.raises(ValueError):
            wilson_interval(k, n)


def test_summary_interval_columns_are_percent_with_one_decimal(clf):
    rows = [cell_row(_res(0.9 if i < 5 else 0.1, i=i), clf) for i in range(10)]
    s = summarize(rows)[0]
    assert (s["pct_all"], s["pct_all_ci_low"], s["pct_all_ci_high"]) == ("50.0", "23.7", "76.3")
    rows = [cell_row(_res(0.1, i=i), clf) for i in range(20)]
    assert (summarize(rows)[0]["pct_all_ci_low"], summarize(rows)[0]["pct_all_ci_high"]) == ("0.0", "16.1")
