"""The typed report row (issue 27 part 1): every writer consumes it, the CSV is its edge, a report read back is
parsed into it in one place, and an export decides each cell once."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine import decision as decision_mod
from engine.case import CaseDocument, ModelFacts
from engine.case.export import cell_rows, export_store
from engine.case.store import CaseStore
from engine.decision import Decision
from engine.domain.labels import Call, Excluded
from engine.pdf_report import render_case_pdf
from engine.pipeline import CellResult, ScanItem
from engine.report import (
    NotACellReport,
    Review,
    cell_row,
    pending_row,
    read_cell_report,
    summarize,
    write_cell_report,
)
from engine.report_row import ReportRow

ENSEMBLE = ModelFacts("ens", "2.0", "card-ens", 0.5, 0.1, ("a", "b"), "CPUExecutionProvider", "Ens")


def _res(i: int, p: float | None, *, status="ok", qc="", disagree=False, members=None, at=None) -> CellResult:
    path = at or Path("/case") / f"c{i}.bmp"
    return CellResult(
        i,
        path,
        path.parent,
        ".",
        path.name,
        f"{i:02d}" * 32,
        status,
        "" if status == "ok" else "not a readable image",
        p,
        members if members is not None else ({} if p is None else {"a": p, "b": p}),
        disagree,
        qc,
    )


def _rows() -> list[ReportRow]:
    """One of each kind: plain, in the band, reviewed (override, exclusion), failed QC, members disagreeing, an
    error, an image not reached."""
    return [
        cell_row(_res(0, 0.9123), ENSEMBLE),
        cell_row(_res(1, 0.4567), ENSEMBLE),
        cell_row(_res(2, 0.8), ENSEMBLE, 0.6, Review("HEM", "Dr. Ada", "2026-01-02T03:04:05Z", model_label="ALL")),
        cell_row(_res(3, 0.1), ENSEMBLE, review=Review("EXCLUDED: duplicate", "ann", "2026-01-02T03:04:06Z")),
        cell_row(_res(4, 0.95, qc="uniform image"), ENSEMBLE),
        cell_row(_res(5, 0.7, disagree=True, members={"a": 0.2, "b": 0.99}), ENSEMBLE),
        cell_row(_res(6, None, status="error"), ENSEMBLE, review=Review("ALL")),
        pending_row("/case/c7.bmp", "/case", ".", "c7.bmp", ENSEMBLE),
    ]


def test_a_row_is_typed(tmp_path):
    plain, band, override, excluded, qc, disagree, error, pending = _rows()
    assert plain.decision == Decision("ALL", False, (), False) and plain.final == Call.ALL
    assert band.decision == Decision("HEM", True, ("review_band",), True)
    assert override.model.threshold == 0.6 and override.model.default_threshold == 0.5 and override.final == Call.HEM
    assert override.overridden and not excluded.overridden
    assert excluded.final == Excluded("duplicate") and excluded.excluded_reason == "duplicate"
    assert qc.decision.reasons == ("qc",) and qc.final == Excluded("failed the quality check (uniform image)")
    assert disagree.decision.reasons == ("model_disagreement",)
    assert error.review is None and error.final is None and error.decision == Decision()  # no review without a score
    assert pending.status == "pending" and pending.model.member_names == () and pending.model.provider == ""


def test_typed_rows_round_trip_through_the_csv(tmp_path):
    rows = _rows()
    first = write_cell_report(tmp_path / "r.csv", rows)
    back = read_cell_report(first)
    assert write_cell_report(tmp_path / "again.csv", back).read_bytes() == first.read_bytes()  # byte for byte
    for was, got in zip(rows, back):
        assert got.decision == was.decision and got.final == was.final and got.status == was.status
        assert got.p_all == was.p_all and got.result.member_p == (was.result.member_p if was.ok else {})
        assert got.result.members_disagree == (was.result.members_disagree and was.ok)
        assert (got.model.name, got.model.threshold, got.model.default_threshold) == (
            was.model.name,
            was.model.threshold,
            was.model.default_threshold,
        )
        assert (got.review and (got.review.label, got.review.reviewer, got.review.reviewed_at)) == (
            was.review and (was.review.label, was.review.reviewer, was.review.reviewed_at)
        )
        assert got.overridden == was.overridden and got.excluded_reason == was.excluded_reason


def _write_text(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_a_report_written_before_3_0_says_needs_review(tmp_path):
    old = {k: v for k, v in _rows()[1].csv().items() if k not in ("flagged", "flag_reasons", "in_review_band")}
    (row,) = read_cell_report(_write_text(tmp_path / "old.csv", [{**old, "needs_review": "true"}]))
    assert row.flagged and row.decision.reasons == ()


def test_a_report_without_the_root_column_is_one_case_of_an_unknown_folder(tmp_path):
    old = {k: v for k, v in _rows()[0].csv().items() if k != "root"}
    (row,) = read_cell_report(_write_text(tmp_path / "old.csv", [old]))
    assert row.root == "" and row.csv()["root"] == "" and summarize([row])[0]["root"] == ""
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(render_pdf(tmp_path, [row])).pages)
    assert "Case folder (unknown)" in text


def render_pdf(tmp_path: Path, rows: list[ReportRow]) -> Path:
    out = tmp_path / "r.pdf"
    out.write_bytes(render_case_pdf(rows, record_known=False))
    return out


def test_a_file_that_is_not_a_cell_report_is_refused_with_what_is_wrong(tmp_path):
    good = _rows()[0].csv()
    with pytest.raises(NotACellReport, match="missing columns: p_all, flagged"):
        read_cell_report(
            _write_text(tmp_path / "a.csv", [{k: v for k, v in good.items() if k not in ("p_all", "flagged")}])
        )
    with pytest.raises(NotACellReport, match="'maybe' of 'c0.bmp' is not ALL, HEM or an exclusion"):
        read_cell_report(_write_text(tmp_path / "b.csv", [{**good, "reviewed_label": "maybe"}]))


def _store(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "case.leukoscan"
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    root = tmp_path / "slide"
    cells = doc.add_items([ScanItem(root / f"c{i}.bmp", root, ".") for i in range(n)])
    doc.set_model(ENSEMBLE)
    doc.add_results(ENSEMBLE, [(c, _res(i, 0.3 + 0.05 * i, at=c.path)) for i, c in enumerate(cells)])
    assert store.close()
    return path


def test_an_export_decides_each_cell_once(tmp_path, monkeypatch):
    """The export walk used to decide every cell twice (the document on load, then the report row)."""
    path = _store(tmp_path, 7)
    calls = []
    real = decision_mod.pipeline.decide
    monkeypatch.setattr(decision_mod.pipeline, "decide", lambda *a, **k: calls.append(a) or real(*a, **k))
    done = export_store(path, tmp_path / "r.csv", tmp_path / "s.csv", mark_exported=False)
    assert len(done.rows) == 7 and len(calls) == 7
    assert [r.decision for r in done.rows] == [c.decision for c in done.doc.cells]  # the document's, carried


def test_cell_rows_carry_the_documents_decision(tmp_path):
    path = _store(tmp_path, 3)
    doc = CaseStore.open(path, create=False, read_only=True).load()
    doc.set_threshold(0.36)
    rows = cell_rows(doc)
    assert [r.decision for r in rows] == [c.decision for c in doc.cells]
    assert [r.prediction for r in rows] == ["HEM", "HEM", "ALL"] and rows[0].model.threshold == 0.36
