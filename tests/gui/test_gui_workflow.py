"""The technician's path: drop a folder -> every cell classified -> review by keyboard -> export."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import pytest
from gui_helpers import RecordedPrompts, make_window, open_and_classify  # noqa: F401  (fixture + helper)
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from engine.case.store import CaseStore
from gui.case_actions import CaseActions
from gui.cells import COL, ERROR, OK, PENDING
from gui.document import Call
from gui.mainwindow import MainWindow
from gui.review_command import Accept, SetLabel


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _drop(w, paths) -> None:
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    ev = QDropEvent(
        QPointF(50, 50), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    w.dropEvent(ev)


def _export(qtbot, w, path: Path) -> list[str]:
    with qtbot.waitSignal(w.exports.written, timeout=20_000) as b:
        assert w.exports.csv(path)
    return b.args[0]


def test_drop_classify_review_by_keyboard_export(qtbot, make_window, cells_dir, tmp_path):
    w = make_window()
    assert w.model_chooser.classifier is not None and w.model_chooser.classifier.name == "tiny_ensemble"
    with qtbot.waitSignal(w.runs.finished, timeout=30_000) as fin:
        _drop(w, [cells_dir])
    cancelled = fin.args[0].cancelled
    assert not cancelled
    cells = w.cell_model.cells
    assert len(cells) == 8 and all(c.status == OK for c in cells)
    # every cell has the engine's P(ALL) and a prediction consistent with the threshold
    for c in cells:
        assert 0.0 <= c.p_all <= 1.0
        assert c.prediction == ("ALL" if c.p_all >= w.doc.threshold else "HEM")
    assert w.side.summary.counts[0].cells == 8

    # override two cells with the keyboard (A / H: the opposite of the model), accept a third (Space)
    w.activateWindow()
    w.browser.gallery.setFocus()
    qtbot.waitUntil(lambda: w.browser.gallery.hasFocus())
    w.browser.select_row(0)
    overridden = {}
    for _ in range(2):
        c = w.browser.current_cell()
        want = "HEM" if c.prediction == "ALL" else "ALL"
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_H if want == "HEM" else Qt.Key.Key_A)
        assert c.review is not None and c.review.label == want and c.review.reviewer == "tech1"
        assert c.review.model_label == c.prediction != want
        overridden[c.file] = (c.prediction, want)
        assert w.browser.current_cell() is not c  # auto-advanced to the next cell
    accepted = w.browser.current_cell()
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Space)
    assert accepted.review is not None and accepted.review.label == accepted.prediction
    assert w.doc.unexported
    qtbot.waitUntil(lambda: w.side.summary.counts[0].reviewed == 3)

    out = tmp_path / "report" / "case.csv"
    out.parent.mkdir()
    written = _export(qtbot, w, out)
    assert written == [str(out), str(out.with_name("case_summary.csv")), str(out.with_name("case_reviews.csv"))]
    history = _read_csv(out.with_name("case_reviews.csv"))  # the audit trail: one row per review change
    assert [(h["old"], h["new"], h["who"]) for h in history] == [
        ("", want, "tech1") for want in [v[1] for v in overridden.values()] + [accepted.prediction]
    ]
    assert all(h["model_version"] == w.model_chooser.classifier.version and h["when"].startswith("20") for h in history)
    rows = {r["file"]: r for r in _read_csv(out)}
    assert len(rows) == 8
    for f, (model_label, human) in overridden.items():  # both labels are in the report
        r = rows[f]
        assert r["prediction"] == model_label and r["reviewed_label"] == human != model_label
        assert r["reviewer"] == "tech1" and r["reviewed_at"].startswith("20")
        assert r["final_label"] == human
    r3 = rows[accepted.file]
    assert r3["reviewed_label"] == accepted.prediction == r3["final_label"]
    unreviewed = [r for f, r in rows.items() if f not in overridden and f != accepted.file]
    assert all(r["reviewed_label"] == "" and r["final_label"] == r["prediction"] for r in unreviewed)
    summary = _read_csv(out.with_name("case_summary.csv"))
    assert summary, "summary CSV is empty"
    assert not w.doc.unexported  # exported: closing does not ask


def test_table_filter_and_next_review_open(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    # a threshold right at one cell's P(ALL) puts that cell inside the review margin
    target = w.cell_model.cells[3]
    w.set_threshold(round(target.p_all, 2))
    assert target.flagged
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("review_open"))
    assert w.browser.proxy.rowCount() == sum(1 for x in w.cell_model.cells if x.review_open)
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("all"))
    w.browser.select_row(0)
    assert w.reviews.next_open()
    assert w.browser.current_cell().flagged
    # reviewing every needs-review cell leaves nothing to go to
    for c in [x for x in w.cell_model.cells if x.flagged]:
        w.browser.select_row(w.browser.proxy.proxy_row_of(c.key))
        w.reviews.apply(Accept())
    assert not w.reviews.next_open()
    # table sorts numerically by P(ALL)
    w.browser.table.sortByColumn(COL["P(ALL)"], Qt.SortOrder.DescendingOrder)
    ps = [w.browser.proxy.cell_at(r).p_all for r in range(w.browser.proxy.rowCount())]
    assert ps == sorted(ps, reverse=True)


def test_cancel_stops_within_a_second_and_resume(qtbot, make_window, tmp_path):
    src = sorted((Path(__file__).resolve().parents[1] / "data" / "cells").glob("*.webp"))
    case = tmp_path / "big case"
    case.mkdir()
    for i in range(600):
        shutil.copyfile(src[i % len(src)], case / f"cell_{i:04d}.webp")
    w = make_window(batch_size=1)
    with qtbot.waitSignal(w.runs.resultsStored, timeout=30_000):
        w.opener.open_paths([case])
    assert w.runs.running
    t0 = time.monotonic()
    with qtbot.waitSignal(w.runs.finished, timeout=5_000) as fin:
        w.run_panel.cancel_btn.click()
    assert time.monotonic() - t0 < 1.0
    assert fin.args[0].cancelled is True  # cancelled
    done = sum(1 for c in w.cell_model.cells if c.status != PENDING)
    assert 0 < done < 600
    assert not w.run_panel.cancel_btn.isVisible()
    # the rest can be classified later; nothing already classified is redone or lost
    with qtbot.waitSignal(w.runs.finished, timeout=60_000):
        w.run_panel.classify_remaining()
    assert all(c.status == OK for c in w.cell_model.cells)


def test_bad_files_are_error_tiles_with_reasons(qtbot, make_window, bad_input):
    w = make_window()
    open_and_classify(qtbot, w, [bad_input.path])
    by_rel = {c.path.relative_to(bad_input.path).as_posix(): c for c in w.cell_model.cells}
    assert set(by_rel) == bad_input.rows
    for rel, word in bad_input.errors.items():
        c = by_rel[rel]
        assert c.status == ERROR and word in c.error.lower()
        assert c.prediction is None
    assert all(by_rel[r].status == OK for r in bad_input.ok)
    assert w.side.summary.counts[0].errors == len(bad_input.errors)
    # error cells cannot be reviewed
    w.filters.filter_combo.setCurrentIndex(w.filters.filter_combo.findData("errors"))
    assert w.browser.proxy.rowCount() == len(bad_input.errors)
    w.browser.select_row(0)
    assert w.reviews.apply(SetLabel(Call.ALL)) == 0
    assert not w.doc.reviews


def test_threshold_change_updates_predictions_and_report(qtbot, make_window, cells_dir, tmp_path):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    default = w.model_chooser.classifier.threshold
    ps = sorted(c.p_all for c in w.cell_model.cells)
    new = round((ps[3] + ps[4]) / 2, 2)  # between two cells: half of them flip side
    w.thr_bar.spin.setValue(new)
    assert w.doc.threshold == pytest.approx(new)
    assert w.thr_bar.slider.value() == round(new * 100)
    for c in w.cell_model.cells:
        assert c.prediction == ("ALL" if c.p_all >= new else "HEM")
    assert sum(c.prediction == "ALL" for c in w.cell_model.cells) == sum(p >= new for p in ps)
    assert w.doc.thresholds[w.model_chooser.classifier.name] == pytest.approx(new) and w.doc.unexported
    assert "changed" in w.thr_bar.note.text()
    qtbot.waitUntil(lambda: w.side.summary.counts[0].all == sum(p >= new for p in ps))
    out = tmp_path / "thr.csv"
    _export(qtbot, w, out)
    rows = _read_csv(out)
    assert all(float(r["threshold"]) == pytest.approx(new) for r in rows)
    assert all(float(r["default_threshold"]) == pytest.approx(default) for r in rows)
    assert all(r["prediction"] == ("ALL" if float(r["p_all"]) >= new else "HEM") for r in rows)
    w.thr_bar.reset.click()
    assert w.doc.threshold == pytest.approx(default) and w.model_chooser.classifier.name not in w.doc.thresholds


def test_bundled_models_work_in_the_app(qtbot, cells_dir, tmp_path):
    """The models shipped in resources/models (skipped until the training pipeline has shipped one)."""
    from engine.paths import models_dir
    from gui.service import EngineService
    from gui.settings import Settings

    if not any(models_dir().glob("*.json")):
        pytest.skip(f"no model shipped in {models_dir()} yet")
    s = Settings()
    s.reviewer = "tech1"
    w = MainWindow(EngineService([models_dir()]), s, check_orphans=False, prompts=RecordedPrompts)
    try:
        w.show()
        qtbot.waitUntil(lambda: w.model_chooser.classifier is not None or bool(w.prompts.messages), timeout=60_000)
        assert w.model_chooser.classifier is not None, w.prompts.messages
        with qtbot.waitSignal(w.runs.finished, timeout=120_000):
            w.opener.open_paths([cells_dir])
        assert all(c.status == OK and 0.0 <= c.p_all <= 1.0 for c in w.cell_model.cells)
        out = tmp_path / "bundled.csv"
        _export(qtbot, w, out)
        rows = _read_csv(out)
        assert len(rows) == 8 and {r["model"] for r in rows} == {w.model_chooser.classifier.name}
    finally:
        w.doc.unexported = False
        w.close()


def test_app_opens_with_the_recommended_model(qtbot, make_window, tiny_models_dir, tmp_path):
    """Without a saved choice the app loads the card marked "recommended" (else an ensemble, else the first)."""
    import json
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    w = make_window(models_dir=models)
    assert w.model_chooser.classifier.is_ensemble  # nothing recommended: the ensemble
    card = models / "tiny_a.json"
    data = json.loads(card.read_text())
    data["recommended"] = True
    card.write_text(json.dumps(data))
    w2 = make_window(models_dir=models, model="")  # no saved choice (the first window saved its own)
    assert w2.model_chooser.classifier.name == "tiny_a"


def test_pdf_report_from_the_app(qtbot, make_window, cells_dir, tmp_path):
    """File ▸ Export PDF report writes the same printable report as `leukoscan-cli report`."""
    from pypdf import PdfReader

    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.doc.set_sample_id(next(iter(w.doc.cases.values())), "S-17")
    w.browser.select_row(0)
    w.reviews.apply(Accept())
    pdf = tmp_path / "case.pdf"
    with qtbot.waitSignal(w.exports.written, timeout=30_000) as done:
        assert w.exports.pdf(pdf)
    assert done.args[0] == [str(pdf)]
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "S-17" in text and w.model_chooser.classifier.version in text
    assert w.doc.unexported  # a PDF is a print: the CSV report is still to be exported


def test_sign_off_is_blocked_while_flagged_cells_remain_locks_and_reopens_with_a_reason(
    qtbot, make_window, cells_dir, tmp_path, monkeypatch
):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.set_threshold(0.5)
    case = next(iter(w.doc.cases.values()))
    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("checked twice", True))
    open_cells = [c for c in w.cell_model.cells if c.review_open]
    if not open_cells:  # make sure one is flagged: a threshold right at a cell's P(ALL)
        w.set_threshold(round(w.cell_model.cells[0].p_all, 3))
        open_cells = [c for c in w.cell_model.cells if c.review_open]
    assert open_cells
    w.browser.select_row(w.browser.proxy.proxy_row_of(open_cells[0].key))
    assert not w.case_actions.sign_off()  # blocked: flagged cells are left
    assert any(t == "Cannot sign off yet" and "flagged" in m for t, m in w.prompts.messages) and case.signoff is None
    w.acts["flagged"].setChecked(True)  # review-flagged mode walks them: flagged cells and unconfirmed ALL calls
    while any(c.left_before_signoff for c in w.cell_model.cells):
        assert w.browser.current_cell().left_before_signoff
        w.reviews.apply(Accept())
    w.doc.set_sample_id(case, "BM-17")
    assert w.case_actions.sign_off() and case.signoff.by == "tech1" and case.signoff.comment == "checked twice"
    w.browser.select_row(0)
    before = w.browser.current_cell().review
    assert w.reviews.apply(SetLabel(Call.HEM if (before and before.label == "ALL") else Call.ALL)) == 0  # locked
    assert w.browser.current_cell().review == before
    qtbot.waitUntil(lambda: w.side.summary.item(0, 0).text().startswith("✓ "))
    with pytest.raises(ValueError, match="signed off"):
        w.doc.set_sample_id(case, "another id")  # part of what was signed
    signed = tmp_path / "signed.csv"
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        w.exports.csv(signed)
    (srow,) = _read_csv(signed.with_name("signed_summary.csv"))  # the app's summary carries the sign-off
    assert (srow["signed_off_by"], srow["comment"], srow["sample_id"]) == ("tech1", "checked twice", "BM-17")
    basis = f"{w.model_chooser.classifier.name} {w.model_chooser.classifier.version}, threshold {w.doc.threshold:.3f}"
    assert case.signoff.basis.startswith(basis + "; cells ")  # what the verdict rested on, kept as signed
    from pypdf import PdfReader

    pdf = tmp_path / "signed.pdf"
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        w.exports.pdf(pdf)
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    assert "signed off by tech1" in text and "BM-17" in text and basis in text
    w.set_threshold(w.doc.threshold + 0.05)  # the counts now follow another threshold: said, sign-off kept as signed
    assert "was signed off with" in w.statusBar().currentMessage() and case.signoff.basis.startswith(basis)
    events = w.bridge.store.case_events()
    assert events[-1]["basis"] == case.signoff.basis
    monkeypatch.setattr(CaseActions, "ask_reason", lambda self, c: "")
    assert not w.case_actions.reopen() and case.signoff is not None  # no reason: not reopened
    monkeypatch.setattr(CaseActions, "ask_reason", lambda self, c: "second opinion")
    assert w.case_actions.reopen() and case.signoff is None
    out = tmp_path / "r.csv"
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        w.exports.csv(out)
    events = w.bridge.store.case_events()
    assert [(e["action"], e["text"]) for e in events] == [("sign_off", "checked twice"), ("reopen", "second opinion")]
    assert CaseStore.open(w.case_files.path, create=False).load().cases[case.root].signoff is None


def test_from_a_case_folder_to_a_signed_off_case_and_a_pdf_by_keyboard(
    qtbot, make_window, cells_dir, tmp_path, monkeypatch
):
    """The lab workflow without the mouse: F walks the flagged cells, Space accepts, Ctrl+Enter signs off,
    Ctrl+P writes the PDF (the file dialogs are the only things stubbed)."""
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.set_threshold(round(sorted(c.p_all for c in w.cell_model.cells)[4], 3))  # make sure some cells are flagged
    assert any(c.left_before_signoff for c in w.cell_model.cells)
    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("", True))
    monkeypatch.setattr(CaseActions, "ask_sample_id", lambda self, c: "BM-33")  # sign-off asks for it
    pdf = tmp_path / "case.pdf"
    monkeypatch.setattr("gui.exports.QFileDialog.getSaveFileName", lambda *a, **k: (str(pdf), ""))
    w.activateWindow()
    w.browser.gallery.setFocus()
    qtbot.waitUntil(lambda: w.browser.gallery.hasFocus())
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_F)
    assert w.acts["flagged"].isChecked() and w.browser.current_cell().left_before_signoff
    for _ in range(len(w.cell_model.cells)):
        if not any(c.left_before_signoff for c in w.cell_model.cells):
            break
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Space)
    assert not any(c.left_before_signoff for c in w.cell_model.cells)
    qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert next(iter(w.doc.cases.values())).signoff is not None
    assert next(iter(w.doc.cases.values())).sample_id == "BM-33"
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
