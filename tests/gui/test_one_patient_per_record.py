"""One patient per record (issue 17, item 1): opening a case store shows that store's cases and nothing
else; the work that was on screen stays in its own record (its session store), or the user is asked.

Found by a probe: open folder ``patientA``, then File ▸ Open case store ``B.db`` (which holds only
``patientB``): B.db then held both cases and its PDF report said "2 cases", patient A included."""

from __future__ import annotations

import shutil

from gui_helpers import make_window, open_and_classify, scans_settled, stored  # noqa: F401  (fixture + helper)
from PySide6.QtWidgets import QApplication

from gui.document import Call
from gui.review_command import SetLabel


def _patient(cells_dir, tmp_path, name: str, n: int):
    d = tmp_path / name
    d.mkdir()
    for src in sorted(cells_dir.iterdir())[:n]:
        shutil.copy2(src, d / src.name)
    return d


def _store_of(tmp_path, tiny_models_dir, monkeypatch, folder, name: str):
    """A case store written by the CLI that holds only ``folder``'s case."""
    from engine.cli import main

    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "no bundled models"))
    db = tmp_path / name
    assert (
        main(
            [
                "classify",
                str(folder),
                "--out",
                str(tmp_path / f"{name}.csv"),
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
    return db


def _roots(doc) -> set[str]:
    return {str(c.root) for c in doc.cells}


def test_opening_a_store_shows_only_its_cases_and_never_writes_the_screen_into_it(
    qtbot, make_window, cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys
):
    patient_a = _patient(cells_dir, tmp_path, "patientA", 8)
    patient_b = _patient(cells_dir, tmp_path, "patientB", 5)
    db = _store_of(tmp_path, tiny_models_dir, monkeypatch, patient_b, "B.db")
    w = make_window()
    open_and_classify(qtbot, w, [patient_a])
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.ALL))
    session = w.case_files.path
    w.doc.unexported = False  # no export prompt in the test
    w.opener.open_store(db)
    qtbot.waitUntil(lambda: w.case_files.path == db and bool(w.cell_model.cells), timeout=10_000)
    qtbot.waitUntil(lambda: scans_settled(w), timeout=10_000)  # anything re-opened into the store: scanned, added
    qtbot.waitUntil(lambda: not w.runs.running, timeout=30_000)
    w.service.flush()
    assert list(w.doc.cases) == [str(patient_b)]  # the window shows B.db's case, and nothing else
    assert _roots(w.doc) == {str(patient_b)} and len(w.cell_model.cells) == 5
    on_disk = stored(db)
    assert list(on_disk.cases) == [str(patient_b)] and len(on_disk.cells) == 5  # B.db holds patient B only
    # the work that was on screen is kept in its own record: the session store it was written to
    kept = stored(session)
    assert list(kept.cases) == [str(patient_a)] and len(kept.cells) == 8 and len(kept.reviews) == 1
    assert any("kept" in text and session.name in text for _t, text in w.prompts.messages)  # and the window says where

    # and the report of B.db names one case, patient B
    from engine.cli import main

    w.close()  # releases B.db's lock
    capsys.readouterr()
    assert main(["report", str(db), "--pdf", str(tmp_path / "B.pdf")]) == 0
    err = capsys.readouterr().err
    assert "5 cells in 1 case(s)" in err, err


def test_work_in_no_store_is_not_dropped_without_asking(
    qtbot, make_window, cells_dir, tiny_models_dir, tmp_path, monkeypatch
):
    """Autosave is off (no session store): the cases on screen are in no record, so opening a store asks
    first; 'No' keeps them on screen."""
    patient_a = _patient(cells_dir, tmp_path, "patientA", 8)
    patient_b = _patient(cells_dir, tmp_path, "patientB", 5)
    db = _store_of(tmp_path, tiny_models_dir, monkeypatch, patient_b, "B.db")
    w = make_window()
    w.case_files.close()  # as if the user data folder could not be written: no store, no autosave
    w.case_files.path = None
    open_and_classify(qtbot, w, [patient_a])
    asked = []
    monkeypatch.setattr(w.prompts, "confirm_leave_unsaved", lambda n: asked.append(n) or False, raising=False)
    w.opener.open_store(db)
    qtbot.waitUntil(lambda: asked == [8], timeout=10_000)
    assert w.case_files.path is None and _roots(w.doc) == {str(patient_a)}  # still on screen, nothing opened
    assert list(stored(db).cases) == [str(patient_b)]
    monkeypatch.setattr(w.prompts, "confirm_leave_unsaved", lambda n: asked.append(n) or True)
    w.opener.open_store(db)
    qtbot.waitUntil(
        lambda: w.case_files.path == db and len(w.cell_model.cells) == 5 and scans_settled(w), timeout=10_000
    )
    assert _roots(w.doc) == {str(patient_b)} and list(stored(db).cases) == [str(patient_b)]


def test_a_scan_that_finishes_after_a_store_was_opened_is_not_added_to_it(
    qtbot, make_window, cells_dir, tiny_models_dir, tmp_path, monkeypatch
):
    """Open folder patientA (a big folder: its scan is still running), then open B.db: the late scan result
    belongs to the document that was on screen, never to B.db."""
    patient_a = _patient(cells_dir, tmp_path, "patientA", 8)
    patient_b = _patient(cells_dir, tmp_path, "patientB", 5)
    db = _store_of(tmp_path, tiny_models_dir, monkeypatch, patient_b, "B.db")
    import threading

    import gui.service as service_mod

    real_scan, release = service_mod.scan, threading.Event()

    def slow_scan(paths, warnings=None):
        if any(str(patient_a) in str(p) for p in paths):
            release.wait(10)  # patientA's scan is still running while B.db is opened
        return real_scan(paths, warnings=warnings)

    monkeypatch.setattr(service_mod, "scan", slow_scan)
    w = make_window()
    handled = []
    w.opener.scanned.connect(handled.append)
    w.opener.open_paths([str(patient_a)])
    (scan_a,) = w.opener._scans
    w.opener.open_store(db)
    qtbot.waitUntil(lambda: w.case_files.path == db and len(w.cell_model.cells) == 5, timeout=10_000)
    assert scan_a.cancelled  # the document it was started for is gone
    release.set()  # patientA's scan finishes now
    assert scan_a.wait(10)
    QApplication.processEvents()  # its answer, queued by now, is dropped (cancelled) rather than delivered later
    qtbot.waitUntil(lambda: not w.runs.running, timeout=30_000)
    w.service.flush()
    assert not any(str(patient_a) in p for found in handled for p, _ in found.opened)
    assert _roots(w.doc) == {str(patient_b)} and list(w.doc.opened) == [str(patient_b)]
    assert list(stored(db).cases) == [str(patient_b)] and len(stored(db).cells) == 5
