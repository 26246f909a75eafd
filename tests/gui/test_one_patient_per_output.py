"""One patient per output (issue 26 item 3, the window's side): sign-off asks for the sample id of a case that has
none (or is refused with a clear message), and Ctrl+P with two cases open asks which case and prints only that
one (before: both patients in one PDF, and "Sample ID not given" beside the signature)."""

from __future__ import annotations

import shutil

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from pypdf import PdfReader
from PySide6.QtCore import Qt

from gui.case_actions import CaseActions
from gui.prompts import Prompts


def _walk_all(qtbot, w):
    w.start_walk()
    for _ in range(len(w.cell_model.cells)):
        cur = w.browser.current_cell()
        if cur is None or not cur.left_before_signoff:
            break
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_Space)
    assert not any(c.left_before_signoff for c in w.cell_model.cells)


def test_sign_off_asks_for_the_sample_id_and_refuses_without_one(qtbot, make_window, cells_dir, monkeypatch):
    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("", True))
    answers = ["", "BM-H5-001"]
    monkeypatch.setattr(CaseActions, "ask_sample_id", lambda self, c: answers.pop(0))
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    _walk_all(qtbot, w)
    case = next(iter(w.doc.cases.values()))
    assert not w.case_actions.sign_off()  # no id given: refused, and said why
    assert case.signoff is None and w.prompts.messages[-1][0] == "Not signed off"
    assert "sample id is needed" in w.prompts.messages[-1][1]
    assert w.case_actions.sign_off()
    assert case.sample_id == "BM-H5-001" and case.signoff is not None


def test_ctrl_p_with_two_cases_prints_one_patient_the_one_chosen(qtbot, make_window, cells_dir, tmp_path, monkeypatch):
    a, b = tmp_path / "patientA", tmp_path / "patientB"
    shutil.copytree(cells_dir, a)
    shutil.copytree(cells_dir, b)
    asked = []

    def choose(self, cases, current):
        asked.append([c.name for c in cases])
        return next(c for c in cases if c.name == "patientB")

    monkeypatch.setattr(Prompts, "choose_case", choose)
    pdf = tmp_path / "report.pdf"
    monkeypatch.setattr("gui.exports.QFileDialog.getSaveFileName", lambda *a, **k: (str(pdf), ""))
    w = make_window()
    open_and_classify(qtbot, w, [a, b])
    assert len(w.doc.cases) == 2
    w.doc.set_sample_id(w.doc.case_named("patientA"), "ID-AAA")
    w.doc.set_sample_id(w.doc.case_named("patientB"), "ID-BBB")
    w.browser.gallery.setFocus()
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        qtbot.keyClick(w.browser.gallery, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert asked == [["patientA", "patientB"]]
    text = " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "ID-BBB" in text and "ID-AAA" not in text and "patientA" not in text
    # a PDF of no chosen case, with two open, is refused rather than pooled
    assert not w.exports.pdf(tmp_path / "both.pdf")
    assert w.prompts.messages[-1][0] == "Choose the case" and not (tmp_path / "both.pdf").exists()
