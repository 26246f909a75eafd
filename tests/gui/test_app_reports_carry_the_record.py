"""The app's own reports are anchors of the case record, as the CLI's are (issue 26 item 5): the summary CSV of
File ▸ Export report and the PDF of Ctrl+P print the chain's length and head of the window's case store, so
``leukoscan-cli verify STORE --report FILE`` checks the record against them."""

from __future__ import annotations

import csv

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)

from engine.case.anchor import read_anchor, record_line
from engine.cli import main
from gui.document import Call
from gui.review_command import SetLabel


def _verify(capsys, store, report) -> tuple[int, str]:
    code = main(["verify", str(store), "--report", str(report)])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_the_summary_csv_and_the_pdf_of_the_app_print_the_chain_head_of_its_store(
    qtbot, make_window, cells_dir, tmp_path, capsys
):
    from pypdf import PdfReader

    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.doc.set_sample_id(next(iter(w.doc.cases.values())), "S-26")
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.HEM))
    store = w.bridge.store
    out = tmp_path / "r.csv"
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        assert w.exports.csv(out)
    head = store.head()
    assert head[0] > 0
    with open(out.with_name("r_summary.csv"), newline="", encoding="utf-8-sig") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["record_rows"], row["record_head"]) == (str(head[0]), head[1])

    pdf = tmp_path / "case.pdf"
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        assert w.exports.pdf(pdf)
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)
    assert " ".join(record_line(*head).split()) in text
    assert tuple(read_anchor(pdf)) == head

    code, said = _verify(capsys, w.case_files.path, out.with_name("r_summary.csv"))
    assert code == 0 and "holds the record the report printed" in said
    w.browser.select_row(1)
    w.reviews.apply(SetLabel(Call.ALL))  # later work: listed against the report, the report still holds
    assert store.flush(10)
    code, said = _verify(capsys, w.case_files.path, pdf)
    assert code == 0 and "added since the report" in said
