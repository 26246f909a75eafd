"""The printable PDF case report, read back with pypdf: what a lab files must say what the CSV says."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from pypdf import PdfReader
from tinymodels import make_tiny_model

import engine
from engine.card import load_card, sha256_file
from engine.cli import main
from engine.heldout import held_out_block, plain_words
from engine.pdf_cells import THUMB_CAP
from engine.pdf_report import INTENDED_USE, SeveralPatients, render_case_pdf, split_cases, write_case_pdf
from engine.pipeline import classify, scan
from engine.registry import Registry
from engine.report import ReportRow, Review, cell_row, read_cell_report, summarize, write_cell_report
from engine.report_cases import cases_of

WHEN = datetime(2026, 12, 1, 9, 30).astimezone()


@pytest.fixture(autouse=True)
def _no_bundled_models(monkeypatch, tmp_path_factory):
    """Card look-ups see the tiny models only."""
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path_factory.mktemp("no-bundled-resources")))


@pytest.fixture
def reg(tiny_models_dir):
    return Registry([tiny_models_dir])


def _classify(folder: Path, reg: Registry, overrides: int = 2) -> list[ReportRow]:
    """Rows of ``folder`` classified by tiny_ensemble; the first ``overrides`` cells get the other label."""
    clf = reg.load("tiny_ensemble")
    rows = []
    for i, res in enumerate(classify(scan([folder]), clf)):
        review = None
        if i < overrides and res.status == "ok":
            pred = cell_row(res, clf).prediction
            review = Review("HEM" if pred == "ALL" else "ALL", "Dr. Ana Núñez", "2026-12-01T09:00:00")
        rows.append(cell_row(res, clf, review=review))
    return rows


def _texts(path: Path) -> list[str]:
    return [" ".join(p.extract_text().split()) for p in PdfReader(path).pages]


def _images(path: Path) -> int:
    """Distinct image XObjects drawn on the pages."""
    ids = set()
    for page in PdfReader(path).pages:
        xo = page["/Resources"].get("/XObject")
        if xo is None:
            continue
        xo = xo.get_object()
        ids |= {xo.raw_get(k).idnum for k in xo if xo[k].get("/Subtype") == "/Image"}
    return len(ids)


def _pct_text(s: dict[str, str]) -> str:
    return f"{s['pct_all']} % (95 % CI {s['pct_all_ci_low']}-{s['pct_all_ci_high']} %)"


def _thumbs(rows) -> int:
    (case,) = cases_of(rows)
    return len({r.path for r in case.blasts + case.overridden + case.excluded + case.flagged})  # one per cell


def test_single_case_says_what_the_csv_says(cells_dir, reg, tmp_path):
    rows = read_cell_report(write_cell_report(tmp_path / "r.csv", _classify(cells_dir, reg)))
    root = rows[0].root
    out = write_case_pdf(
        tmp_path / "case.pdf", rows, sample_ids={root: "S-2026-0042"}, card=reg.get("tiny_ensemble"), generated_at=WHEN
    )
    assert out == tmp_path / "case.pdf" and out.read_bytes().startswith(b"%PDF-")
    text = " ".join(_texts(out))
    (s,) = summarize(rows)
    assert "S-2026-0042" in text and root in text
    assert f"Blasts (ALL): {_pct_text(s)} of {s['classified']} classified cells" in text
    assert "threshold 0.5000" in text and "0.5000 used; card default 0.5000" in text
    assert INTENDED_USE in text and "not a diagnostic device" in text
    assert "Sign-off not signed off" in text and "Reviewer(s) Dr. Ana Núñez" in text
    assert sha256_file(reg.get("tiny_ensemble").path) in text  # the exact card that was used
    assert f"LeukoScan {engine.__version__}" in text and "page 1 of" in text
    assert "generated 2026-12-01 09:30" in text
    assert "Cells the reviewer overrode (2)" in text
    assert _images(out) == _thumbs(rows) >= 2
    # nothing is left beside the PDF (atomic write: the temp file was renamed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.pdf", "r.csv"]


def test_one_pdf_is_one_patient(cells_dir, reg, tmp_path):
    """Issue 26 item 3: Ctrl+P with two cases open put both patients into one PDF (an overview, then each case).
    The PDF API now refuses rows of several cases, naming them; each case is printed alone, with its own numbers."""
    other = tmp_path / "slide 2"
    shutil.copytree(cells_dir, other)
    for f in sorted(other.glob("*hem.bmp"))[:3]:  # a different share of blasts than case 1
        f.unlink()
    rows = _classify(cells_dir, reg) + _classify(other, reg, overrides=0)
    r1, r2 = list(dict.fromkeys(r.root for r in rows))
    ids = {r1: "CASE-ONE", r2: "CASE-TWO"}
    signoffs = {r2: {"signed_off_by": "Dr. Jo Lee", "signed_off_at": datetime(2026, 12, 1, 11, 0), "comment": "ok"}}
    with pytest.raises(SeveralPatients, match="one PDF is one patient: these rows hold 2 cases .*CASE-ONE.*CASE-TWO"):
        write_case_pdf(tmp_path / "two.pdf", rows, sample_ids=ids, signoffs=signoffs, card=reg.get("tiny_ensemble"))
    assert not (tmp_path / "two.pdf").exists()
    split = split_cases(rows)
    assert list(split) == [r1, r2]
    texts = {}
    for root, case_rows in split.items():
        out = write_case_pdf(
            tmp_path / f"{ids[root]}.pdf",
            case_rows,
            sample_ids=ids,
            signoffs=signoffs,
            card=reg.get("tiny_ensemble"),
            generated_at=WHEN,
        )
        texts[root] = " ".join(_texts(out))
    s1 = summarize(r for r in rows if r.root == r1)[0]
    s2 = summarize(r for r in rows if r.root == r2)[0]
    assert s1["pct_all"] != s2["pct_all"]
    p1, p2 = texts[r1], texts[r2]
    assert "CASE-ONE" in p1 and "CASE-TWO" not in p1 and _pct_text(s1) in p1 and "not signed off" in p1
    assert "CASE-TWO" in p2 and "CASE-ONE" not in p2 and _pct_text(s2) in p2
    assert "signed off by Dr. Jo Lee on 2026-12-01 11:00" in p2 and '- "ok"' in p2
    assert "not signed off" not in p2


def test_a_missing_image_gets_a_placeholder_not_a_failure(cells_dir, reg, tmp_path):
    rows = _classify(cells_dir, reg)
    gone = next(r for r in rows if r.review)
    Path(gone.path).unlink()
    out = write_case_pdf(tmp_path / "case.pdf", rows, generated_at=WHEN)
    text = " ".join(_texts(out))
    assert "image not available: file not found" in text and gone.cell_id in text
    assert _images(out) == _thumbs(rows) - 1
    assert "model card not found" in text  # no card given: no facts invented


def test_thumbnails_are_capped_per_group(tmp_path):
    n = THUMB_CAP + 7
    rows = [
        ReportRow.from_csv(
            dict(
                path=str(tmp_path / f"gone{i}.bmp"),
                folder=".",
                file=f"gone{i}.bmp",
                status="ok",
                error="",
                prediction="HEM",
                p_all="0.4500",
                flagged="true",
                model="m",
                model_version="1",
                threshold="0.5000",
                reviewed_label="",
                reviewer="",
                reviewed_at="",
                final_label="HEM",
                default_threshold="0.5000",
                provider="CPUExecutionProvider",
                root="/case",
                qc="",
                sha256=f"id{i:04d}" + "0" * 58,  # the cell id is the image's sha256 cut to 10 digits
            )
        )
        for i in range(n)
    ]
    out = tmp_path / "many.pdf"
    out.write_bytes(render_case_pdf(rows, generated_at=WHEN))
    text = " ".join(_texts(out))
    assert f"Cells flagged for review (reviewed or not) ({n})" in text and "and 7 more" in text
    assert text.count("image not available") == THUMB_CAP
    assert f"id{THUMB_CAP - 1:04d}" in text and f"id{THUMB_CAP:04d}" not in text


def test_every_cell_counted_as_all_is_shown_with_a_traceable_caption(tmp_path):
    """Review-safety issue, item 2: the printed report showed only flagged and overridden cells, captioned by
    truncated file names ("UID_H12...em.webp") that could not be traced; ALL calls nobody flagged were on no
    page.  Now every ALL cell is shown (beyond the per-group cap), captioned with its cell id (in the CSV too),
    P(ALL), the model's and the final call and who confirmed it; then a signature and an interpretation line."""
    n = THUMB_CAP + 5
    rows = [
        ReportRow.from_csv(
            dict(
                path=str(tmp_path / f"UID_H12_{i}_hem.webp"),
                folder=".",
                file=f"UID_H12_{i}_hem.webp",
                status="ok",
                error="",
                prediction="ALL",
                p_all="0.9100",
                flagged="false",
                model="m",
                model_version="1",
                threshold="0.5000",
                reviewed_label="ALL" if i == 0 else "",
                reviewer="ann" if i == 0 else "",
                reviewed_at="2026-12-01T09:00:00Z" if i == 0 else "",
                final_label="ALL",
                default_threshold="0.5000",
                provider="CPUExecutionProvider",
                root="/case",
                qc="",
                sha256=f"c{i:05d}ab" + "0" * 56,
            )
        )
        for i in range(n)
    ]
    out = tmp_path / "all.pdf"
    out.write_bytes(
        render_case_pdf(
            rows,
            signoffs={"/case": {"signed_off_by": "Dr. Ada", "signed_off_at": "2026-12-01T10:00:00Z"}},
            generated_at=WHEN,
        )
    )
    text = " ".join(_texts(out))
    assert f"Every cell counted as ALL (caption: cell id, P(ALL); model call > final call, who confirmed) ({n})" in text
    assert all(f"c{i:05d}ab" in text for i in range(n))  # each one, uniquely
    assert "ALL>ALL ann" in text and "ALL>ALL -" in text
    assert "Reviewed by Dr. Ada, signed 2026-12-01" in text and "Interpretation:" in text


def test_core_fonts_fallback_writes_any_name(tmp_path):
    """Without a Unicode system font, names outside Latin-1 must not make the report fail."""
    row = dict(
        path=str(tmp_path / "細胞.bmp"),
        folder="スライド",
        file="細胞 – 1.bmp",
        status="ok",
        prediction="HEM",
        p_all="0.2000",
        flagged="false",
        model="m",
        model_version="1",
        threshold="0.5000",
        reviewed_label="ALL",
        reviewer="Łukasz 李",
        root="/Fall ñ 細胞",
        qc="",
    )
    out = tmp_path / "core.pdf"
    out.write_bytes(
        render_case_pdf(
            [ReportRow.from_csv(row)],
            signoffs={"/Fall ñ 細胞": {"signed_off_by": "李"}},
            generated_at=WHEN,
            search_fonts=False,
        )
    )
    text = " ".join(_texts(out))
    assert "/Fall ñ ??" in text and "signed off by ?" in text and "100.0 % (95 % CI 20.7-100.0 %)" in text


def test_held_out_card_facts_and_version_check(tmp_path, cells_dir, reg):
    card_path = make_tiny_model(tmp_path / "m", name="tiny_ensemble", version="0.0-test")
    data = json.loads(card_path.read_text())
    per_subject = {"1": {"n": 100, "class": "ALL", "accuracy": 0.9}, "H1": {"n": 80, "class": "HEM", "accuracy": 0.6}}
    per_class = {"ALL": {"recall": 0.9}, "HEM": {"recall": 0.6}}
    data["metrics"]["held_out"] = held_out_block(per_subject, per_class, "two donors held out")
    card_path.write_text(json.dumps(data))
    card = load_card(card_path)
    rows = _classify(cells_dir, reg, overrides=0)
    text = " ".join(_texts(write_case_pdf(tmp_path / "a.pdf", rows, card=card, generated_at=WHEN)))
    assert plain_words(data["metrics"]["held_out"])[0] in text and card.sha256 in text
    newer = [replace(r, model=replace(r.model, version="9.9")) for r in rows]
    text = " ".join(_texts(write_case_pdf(tmp_path / "b.pdf", newer, card=card, generated_at=WHEN)))
    assert "classified with version 9.9: its facts are not shown" in text and card.sha256 not in text


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "case.pdf"
    target.write_bytes(b"old")
    row = dict(path="/x/c.bmp", file="c.bmp", status="error", error="file not found", root="/x", folder=".")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("engine.fileio.os.replace", boom)
    with pytest.raises(OSError):
        write_case_pdf(target, [ReportRow.from_csv(row)])
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["case.pdf"]
    with pytest.raises(ValueError):
        render_case_pdf([])


def test_cli_report(cells_dir, tiny_models_dir, tmp_path, capsys):
    csv_path = tmp_path / "REPORT.csv"
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(["classify", str(cells_dir), "--out", str(csv_path), *common]) == 0
    capsys.readouterr()
    pdf = tmp_path / "case.pdf"
    assert main(["report", str(csv_path), "--pdf", str(pdf), "--models-dir", str(tiny_models_dir)]) == 0
    assert "8 cells in 1 case(s); PDF report: " in capsys.readouterr().err
    text = " ".join(_texts(pdf))
    assert sha256_file(tiny_models_dir / "tiny_ensemble.json") in text
    assert "unknown (not in this CSV" in text and "not signed off" not in text  # a CSV alone does not say

    assert main(["report", str(csv_path), "--pdf", str(tmp_path / "nocard.pdf")]) == 0
    assert "no model card found for tiny_ensemble" in capsys.readouterr().err

    for args, words in (
        ([str(tmp_path / "missing.csv"), "--pdf", str(pdf)], "no such file"),
        ([str(pdf), "--pdf", str(tmp_path / "x.pdf")], "cannot read"),  # a PDF is not UTF-8 text
        ([str(csv_path), "--pdf", str(csv_path)], "another file than the report"),
    ):
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    assert main(["report", str(other), "--pdf", str(tmp_path / "y.pdf")]) == 2
    assert "not a LeukoScan per-cell report (missing columns: path, file" in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "y.pdf").exists()


def test_cli_report_from_a_case_store_uses_its_sample_ids(cells_dir, tiny_models_dir, tmp_path, capsys):
    """`leukoscan-cli report CASE.db`: the same PDF from the store an overnight `classify --store` wrote,
    with the sample id typed in the app."""
    from engine.case.store import CaseStore

    db = tmp_path / "CASE.db"
    common = ["--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(["classify", str(cells_dir), "--out", str(tmp_path / "r.csv"), "--store", str(db), *common]) == 0
    store = CaseStore.open(db, create=False)
    doc = store.load()
    store.attach(doc)
    doc.set_sample_id(next(iter(doc.cases.values())), "BM-2026-0042")
    store.close()
    capsys.readouterr()
    pdf = tmp_path / "case.pdf"
    assert main(["report", str(db), "--pdf", str(pdf), "--models-dir", str(tiny_models_dir)]) == 0
    text = " ".join(_texts(pdf))
    assert "BM-2026-0042" in text and "8" in text
    empty = tmp_path / "empty.db"
    CaseStore.open(empty).close()
    assert main(["report", str(empty), "--pdf", str(tmp_path / "e.pdf")]) == 2
    assert "no classified cells" in capsys.readouterr().err


def test_local_time_shows_the_offset_and_keeps_unparseable_text(monkeypatch):
    import time

    from engine.localtime import local_time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert local_time("2024-06-01T10:00:00Z") == "2024-06-01 12:00 +02:00"
        assert local_time("2024-01-01T10:00:00+00:00") == "2024-01-01 11:00 +01:00"
        assert local_time("") == "" and local_time("yesterday") == "yesterday"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_histogram_shows_the_review_band_as_the_window_does(cells_dir, reg, tmp_path):
    """The amber band of the card's review margin around the threshold, with its legend; none without the card."""
    rows = _classify(cells_dir, reg, overrides=0)
    card = reg.get("tiny_ensemble")  # threshold 0.5, review margin 0.1
    out = write_case_pdf(tmp_path / "band.pdf", rows, card=card, generated_at=WHEN)
    text = " ".join(_texts(out))
    assert "review band" in text and "0.5 ± 0.1: flagged" in text
    page = PdfReader(out).pages[0]
    stream = page.get_contents().get_data().decode("latin-1")
    assert "0.902 0.6235 0 rg" in stream  # the amber fill (230, 159, 0: gui.style.REVIEW_COLOR)
    # not the card that classified them: no band claimed
    newer = [replace(r, model=replace(r.model, version="9.9")) for r in rows]
    text = " ".join(_texts(write_case_pdf(tmp_path / "none.pdf", newer, card=card, generated_at=WHEN)))
    assert "review band" not in text
