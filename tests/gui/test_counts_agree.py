"""One rule, one name (refactoring issue, item 1): *flagged* and *review open* are counted by the one case rule
(:class:`engine.case.rules.CaseCounts`), so the window, ``leukoscan-cli classify --store``, ``leukoscan-cli
export``, the summary CSV and the PDF report the same numbers for the same store.

Before the rule had one name, ``classify --store`` printed every flagged cell as "need review" (reviewed ones
included) while ``export`` printed only the unreviewed ones, and the PDF counted with its own copy of the rule.
"""

from __future__ import annotations

import csv
import re

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)

from engine.cli import main
from gui.review_command import Accept


def _flag(w, n: int) -> None:
    """A threshold that puts at least ``n`` cells inside the review margin."""
    margin = w.doc.current.review_margin
    ps = sorted(c.p_all for c in w.cell_model.cells)
    best = min(range(len(ps) - n + 1), key=lambda i: ps[i + n - 1] - ps[i])
    assert ps[best + n - 1] - ps[best] < 2 * margin
    w.set_threshold(round((ps[best] + ps[best + n - 1]) / 2, 3))
    assert sum(c.flagged for c in w.cell_model.cells) >= n


def test_window_cli_summary_csv_and_pdf_report_the_same_flagged_and_open_counts(
    qtbot, make_window, cells_dir, tiny_models_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "no-bundled-resources"))
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    _flag(w, 3)
    first = next(c for c in w.cell_model.cells if c.flagged)
    w.browser.select_row(w.browser.proxy.proxy_row_of(first.key))
    assert w.reviews.apply(Accept()) == 1
    qtbot.waitUntil(lambda: w.side.summary.counts[0].reviewed == 1, timeout=5_000)
    win = w.side.summary.counts[0]
    assert win.flagged >= 3 and win.review_open == win.flagged - 1  # the two names differ here
    db = w.case_files.path
    w.doc.unexported = False
    w.close()  # writes what is pending and releases the store
    capsys.readouterr()

    expected = f"{win.flagged} flagged for review"
    # leukoscan-cli classify --store (nothing left to classify: it reports the stored case)
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "c.csv"),
                "--store",
                str(db),
                "--model",
                "tiny_ensemble",
                "--models-dir",
                str(tiny_models_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    line = capsys.readouterr().err
    assert expected in line and f"{win.review_open} review(s) open" in line, line
    # leukoscan-cli export, and its summary CSV
    assert main(["export", str(db), "--out", str(tmp_path / "e.csv"), "--summary", str(tmp_path / "s.csv")]) == 0
    line = capsys.readouterr().err
    assert expected in line and f"{win.review_open} review(s) open" in line and f"{win.reviewed} reviewed" in line
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (int(row["flagged"]), int(row["review_open"]), int(row["reviewed"])) == (
        win.flagged,
        win.review_open,
        win.reviewed,
    )
    # the PDF's case total row: Cells, ALL, HEM, % blasts (CI), Review open, Errors, QC, Excluded
    pdf = tmp_path / "case.pdf"
    assert main(["report", str(db), "--pdf", str(pdf)]) == 0
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    m = re.search(r"Case total\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ % \([^)]*\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", text)
    assert m, text
    assert tuple(map(int, m.groups())) == (
        win.cells,
        win.all,
        win.hem,
        win.review_open,
        win.errors,
        win.qc,
        win.excluded,
    )
