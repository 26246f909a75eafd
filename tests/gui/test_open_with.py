"""A case store handed over by the file manager ("Open with LeukoScan", i.e. ``leukoscan CASE.leukoscan``), dropped
on the window or named on the command line opens that record, once (issue 19 §3)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gui_helpers import make_window, open_and_classify, scans_settled  # noqa: F401  (fixture + helper)


def _record(qtbot, make_window, cells_dir, tmp_path, sample_id="S-0077") -> tuple[Path, Path]:
    folder = tmp_path / "patient77"
    folder.mkdir()
    for src in sorted(cells_dir.iterdir())[:5]:
        shutil.copy2(src, folder / src.name)
    w = make_window()
    open_and_classify(qtbot, w, [folder])
    w.doc.review(w.doc.cells[:2], "accept", "tech1")
    w.doc.set_sample_id(w.doc.cases[str(folder)], sample_id)
    w.doc.unexported = False
    w.close()
    (path,) = [p for p in w.case_files.files.dir.iterdir() if p.suffix == ".leukoscan"]
    return folder, path


def test_a_case_store_on_the_command_line_opens_that_record_once(qtbot, make_window, cells_dir, tmp_path):
    """Old code: ``leukoscan CASE.leukoscan`` scanned the store file for images ("No images found")."""
    from gui.app import parse_args

    folder, record = _record(qtbot, make_window, cells_dir, tmp_path)
    assert parse_args([str(record)]).paths == [str(record)]
    w = make_window()
    runs = []
    w.runs.resultsStored.connect(lambda *a: runs.append(a))
    w.opener.open_paths([str(record)])  # what build_window does with the command line's paths
    qtbot.waitUntil(
        lambda: w.case_files.path == record and len(w.cell_model.cells) == 5 and scans_settled(w), timeout=10_000
    )
    assert w.doc.cases[str(folder)].sample_id == "S-0077"
    assert sum(c.review is not None for c in w.doc.cells) == 2
    assert not runs  # its results were shown, nothing classified again
    assert str(record) in w.settings.recent_stores  # and it is in File ▸ Open recent from now on
    assert not [m for m in w.prompts.messages if m[0] in ("No images found", "Some paths could not be opened")]
    shown = list(w.prompts.messages)
    w.opener.open_paths([str(record)])  # handed over again (a second double-click): it is on screen already
    qtbot.waitUntil(lambda: scans_settled(w), timeout=10_000)
    assert w.case_files.path == record and w.prompts.messages == shown
    stores = [p for p in w.case_files.files.dir.iterdir() if p.suffix in (".leukoscan", ".db")]
    assert stores == [record]  # no second record was made
