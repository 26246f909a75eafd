"""Reopening a case opens its record (issue 18, item 3).

Found by a reviewer: File ▸ Open recent on a folder that was classified, reviewed and signed off started a
new session (the cells classified again, 0/32 reviewed, not signed off, no warning); the real record could be
found only through File ▸ Open case store among files named ``session-5efe52d3973c.db``, and the duplicate
record stayed on disk.  And the close prompt counted every review, also those exported minutes before."""

from __future__ import annotations

import shutil

from gui_helpers import make_window, open_and_classify, scans_settled, stored  # noqa: F401  (fixture + helpers)

from gui.document import Call
from gui.prompts import CloseChoice
from gui.review_command import SetLabel
from gui.session import SessionFiles
from gui.settings import user_data_dir


def _patient(cells_dir, tmp_path, name: str, n: int = 6):
    d = tmp_path / name
    d.mkdir()
    for src in sorted(cells_dir.iterdir())[:n]:
        shutil.copy2(src, d / src.name)
    return d


def _signed_off_record(qtbot, make_window, folder, sample_id="S-0042"):
    """Classify ``folder``, review every cell, give it a sample id, sign it off, close the window; returns
    the path of its case store."""
    w = make_window()
    open_and_classify(qtbot, w, [folder])
    doc = w.doc
    case = doc.cases[str(folder)]
    doc.review(doc.cells, "accept", "tech1")
    doc.set_sample_id(case, sample_id)
    doc.sign_off(case, "dr. who")
    path = w.case_files.path
    w.doc.unexported = False  # no close prompt
    w.close()
    return path


def _stores():
    d = SessionFiles(user_data_dir()).dir
    return sorted(p for p in d.iterdir() if p.suffix in (".leukoscan", ".db"))


def test_reopening_a_signed_off_folder_opens_its_record_not_a_new_one(
    qtbot, make_window, cells_dir, tmp_path, monkeypatch
):
    folder = _patient(cells_dir, tmp_path, "patient42")
    _signed_off_record(qtbot, make_window, folder)
    (record,) = _stores()
    assert record.suffix == ".leukoscan" and "S-0042" in record.name  # named after its sample id
    w = make_window()
    runs = []
    w.runs.resultsStored.connect(lambda *a: runs.append(a))
    w.runs.finished.connect(lambda *a: runs.append(a))
    w.opener.open_paths([str(folder)])  # as File ▸ Open recent does
    qtbot.waitUntil(lambda: len(w.cell_model.cells) == 6 and scans_settled(w), timeout=10_000)
    case = w.doc.cases[str(folder)]
    assert w.case_files.path == record  # the record itself is shown and written
    assert case.sample_id == "S-0042" and case.signoff is not None and case.signoff.by == "dr. who"
    assert len(w.doc.reviews) == 6 and not w.doc.unclassified() and not runs  # nothing classified again
    w.close()
    assert _stores() == [record]  # no duplicate record left on disk


def test_several_records_of_a_folder_ask_which(qtbot, make_window, cells_dir, tmp_path, monkeypatch):
    from engine.case.store import CaseStore

    folder = _patient(cells_dir, tmp_path, "patient7")
    _signed_off_record(qtbot, make_window, folder, "S-7A")
    (first,) = _stores()
    other = first.with_name("overnight.db")  # a second record of the same folder (an older .db store)
    shutil.copy2(first, other)
    st = CaseStore.open(other, create=False)
    d = st.load()
    st.attach(d)
    d.reopen(d.cases[str(folder)], "tech2", "second look")
    st.close()
    asked = []

    def choose(folder_, records):
        asked.append((folder_, sorted(r.path.name for r in records)))
        return next(r.path for r in records if r.path == other)

    w = make_window()
    monkeypatch.setattr(w.prompts, "choose_record", choose)
    w.opener.open_paths([str(folder)])
    qtbot.waitUntil(lambda: w.case_files.path == other and len(w.cell_model.cells) == 6, timeout=10_000)
    assert asked and asked[0][0] == str(folder) and asked[0][1] == sorted([first.name, other.name])
    assert w.doc.cases[str(folder)].signoff is None and w.doc.cases[str(folder)].sample_id == "S-7A"


def test_a_record_is_found_by_sample_id_and_listed_in_open_recent(qtbot, make_window, cells_dir, tmp_path):
    folder = _patient(cells_dir, tmp_path, "patient9")
    _signed_off_record(qtbot, make_window, folder, "S-0009")
    (record,) = _stores()
    w = make_window()
    found = w.opener.find_records(sample_id="s-0009")  # case-insensitive
    assert [r.path for r in found] == [record] and found[0].roots == [str(folder)]
    assert [r.path for r in w.opener.find_records(folder=str(folder))] == [record]
    assert w.opener.find_records(sample_id="S-nope") == []
    w.opener.fill_recent(w.recent_menu)
    texts = [a.text() for a in w.recent_menu.actions()]
    assert any("S-0009" in t for t in texts), texts


def test_one_extension_for_case_stores(qtbot, make_window, monkeypatch):
    w = make_window()
    assert w.case_files.path.suffix == ".leukoscan"
    seen = []
    from gui import opening

    monkeypatch.setattr(
        opening.QFileDialog,
        "getOpenFileName",
        staticmethod(lambda *a, **k: seen.append(a[3] if len(a) > 3 else k.get("filter")) or ("", "")),
    )
    w.opener.open_store_dialog(w)
    assert seen and "*.leukoscan" in seen[0] and "*.db" in seen[0]  # creates .leukoscan, opens both
    filters = seen[0].split(";;")  # the default (first) filter shows the one extension; older .db stores second
    assert filters[0] == "LeukoScan case store (*.leukoscan)" and "(*.db)" in filters[1]


def test_close_prompt_counts_only_what_changed_since_the_export(qtbot, make_window, cells_dir, tmp_path, monkeypatch):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    for row in range(4):
        w.browser.select_row(row)
        w.reviews.apply(SetLabel(Call.HEM))
    with qtbot.waitSignal(w.exports.written, timeout=30_000):
        assert w.exports.csv(tmp_path / "r.csv")
    qtbot.waitUntil(lambda: not w.doc.unexported, timeout=10_000)
    w.browser.select_row(5)
    w.reviews.apply(SetLabel(Call.ALL))
    asked = []
    monkeypatch.setattr(w.prompts, "ask_close", lambda n, since="": asked.append(n) or CloseChoice.CANCEL)
    assert not w.confirm_close()
    assert asked == [1]  # one review since the export, not 5
