"""Nothing the technician did is lost: the session store and its restore, model failures, no models, closing,
command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gui_helpers import make_window, open_and_classify, scans_settled, stored, wait_page_drawn  # noqa: F401  (fixture + helper)
from PySide6.QtCore import QLockFile

from engine.case.store import CaseStore
from gui.document import Call
from gui.prompts import CloseChoice, Prompts
from gui.review_command import Accept, Clear, SetLabel
from gui.service import EngineService
from gui.session import SessionFiles, lock_path
from gui.settings import user_data_dir

REPO = Path(__file__).resolve().parents[2]


def _wait_saved(qtbot, w):
    """Every change so far is committed to the window's case store."""
    assert w.bridge.store is not None, "the window writes no case store"
    assert w.bridge.store.flush(10.0)


def _crash(w):
    """What a kill does: the lock is gone (its process is), the store is never closed; the file stays."""
    w.case_files.files._lock.release()  # the lock file goes with the killed process (its pid is dead)
    w.case_files.files._lock = None
    w.bridge.detach_store(close=True)  # the writer stops; no closed_at is written
    w.service.shutdown()


def test_autosave_then_restore_in_a_new_window(qtbot, make_window, cells_dir, monkeypatch):
    w1 = make_window()
    open_and_classify(qtbot, w1, [cells_dir])
    a, b = w1.cell_model.cells[1], w1.cell_model.cells[5]
    w1.browser.select_row(1)
    w1.reviews.apply(SetLabel(Call.HEM if a.prediction == "ALL" else Call.ALL))
    w1.browser.select_row(5)
    w1.reviews.apply(Accept())
    labels = {a.key: a.review.label, b.key: b.review.label}
    w1.set_threshold(0.62)
    _wait_saved(qtbot, w1)
    path = w1.case_files.path
    assert path.parent == SessionFiles(user_data_dir()).dir and path.suffix == ".leukoscan"
    saved = stored(path)  # what is on disk now, read back without the window
    assert {k: r.label for k, r in saved.reviews.items()} == labels
    assert saved.thresholds == {"tiny_ensemble": pytest.approx(0.62)} and saved.model_name == "tiny_ensemble"
    assert saved.opened == {str(cells_dir): True} and not saved.unclassified()
    p_before = {c.key: c.p_all for c in w1.cell_model.cells}

    _crash(w1)
    assert path.exists() and not CaseStore.peek(path).get("closed_at")

    asked = []
    monkeypatch.setattr(Prompts, "ask_restore", lambda self, p, meta: asked.append((p, meta)) or True)
    w2 = make_window(check_orphans=True)
    runs = []
    w2.runs.finished.connect(lambda *a: runs.append(a))
    w2.runs.resultsStored.connect(lambda *a: runs.append(a))
    qtbot.waitUntil(lambda: bool(asked), timeout=10_000)
    assert asked[0][0] == path and asked[0][1]["cells"] == "8" and asked[0][1]["reviews"] == "2"
    qtbot.waitUntil(lambda: len(w2.cell_model.cells) == 8, timeout=10_000)
    # the results are there at once: restored, not classified again
    assert all(c.result is not None for c in w2.cell_model.cells)
    assert {c.key: c.p_all for c in w2.cell_model.cells} == p_before
    assert w2.case_files.path == path
    got = {c.key: c.review.label for c in w2.cell_model.cells if c.review is not None}
    assert got == labels
    assert w2.doc.threshold == pytest.approx(0.62) and w2.thr_bar.spin.value() == pytest.approx(0.62)
    assert w2.doc.unexported
    assert w2.doc.can_undo  # the undo history came back too
    qtbot.waitUntil(lambda: scans_settled(w2), timeout=10_000)  # the folder scanned again: still nothing to classify
    assert runs == [] and w2.run_panel.last_run is None and not w2.runs.running
    w2.browser.select_row(0)
    # a review counts once the preview has shown the cell (issue 26 item 8): wait for it, as a person would
    qtbot.waitUntil(lambda: not w2.doc.unseen([w2.browser.current_cell()]), timeout=10_000)
    assert (
        w2.reviews.apply(Clear() if w2.browser.current_cell().review else SetLabel(Call.ALL)) == 1
    )  # the restored store is written on
    _wait_saved(qtbot, w2)
    assert set(stored(path).reviews) != set(labels)


def test_session_of_a_killed_process_is_an_orphan(tmp_path):
    files = SessionFiles(tmp_path)
    path = files.new_path("abc123")
    files.dir.mkdir(parents=True)
    CaseStore.open(path).close()
    lock = lock_path(path)
    code = (
        "import sys, os; from PySide6.QtCore import QLockFile; l = QLockFile(sys.argv[1]); "
        "assert l.tryLock(1000); print('locked', flush=True); os._exit(0)"
    )  # exits holding the lock
    p = subprocess.run([sys.executable, "-c", code, str(lock)], capture_output=True, text=True, timeout=60)
    assert "locked" in p.stdout and lock.exists()
    assert files.orphans() == [path]
    # a lock held by a live process (this one) is not an orphan
    live = QLockFile(str(lock))
    live.setStaleLockTime(0)
    assert live.tryLock(100)
    assert SessionFiles(tmp_path).orphans() == []
    live.unlock()


def test_model_that_fails_to_load_keeps_the_app_usable(qtbot, make_window, tiny_models_dir, cells_dir):
    bad = tiny_models_dir / "tiny_broken.onnx"
    bad.write_bytes(b"this is not an ONNX model" * 10)
    card = json.loads((tiny_models_dir / "tiny_a.json").read_text())
    import hashlib

    card.update(
        name="tiny_broken",
        display_name="Broken model",
        onnx_file=bad.name,
        sha256=hashlib.sha256(bad.read_bytes()).hexdigest(),
    )
    (tiny_models_dir / "tiny_broken.json").write_text(json.dumps(card))
    w = make_window()
    assert w.model_chooser.combo.findData("tiny_broken") >= 0
    with qtbot.waitSignal(w.model_chooser.failed, timeout=20_000):
        w.model_chooser.combo.setCurrentIndex(w.model_chooser.combo.findData("tiny_broken"))
        w.model_chooser.chosen(w.model_chooser.combo.currentIndex())
    qtbot.waitUntil(lambda: any(t == "Model could not be loaded" for t, _ in w.prompts.messages))
    msg = [m for t, m in w.prompts.messages if t == "Model could not be loaded"][0]
    assert "tiny_broken" in msg
    # still on the working model, and it still classifies
    assert w.model_chooser.classifier.name == "tiny_ensemble" and w.model_chooser.combo.currentData() == "tiny_ensemble"
    open_and_classify(qtbot, w, [cells_dir])
    assert all(c.p_all is not None for c in w.cell_model.cells)


def test_switching_model_reclassifies_and_keeps_reviews(qtbot, make_window, cells_dir):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.HEM))
    key = w.browser.current_cell().key if False else w.cell_model.cells[0].key
    before = {c.key: c.p_all for c in w.cell_model.cells}
    with qtbot.waitSignal(w.runs.finished, timeout=30_000):
        w.model_chooser.combo.setCurrentIndex(w.model_chooser.combo.findData("tiny_a"))
        w.model_chooser.chosen(w.model_chooser.combo.currentIndex())
    qtbot.waitUntil(lambda: not w.runs.running and all(c.result is not None for c in w.cell_model.cells))
    after = {c.key: c.p_all for c in w.cell_model.cells}
    assert w.model_chooser.classifier.name == "tiny_a" and after != before
    assert w.cell_model.cells[0].review is not None and w.cell_model.cells[0].review.label == "HEM"
    assert key in w.doc.reviews


def test_no_models_installed_shows_a_clear_message(qtbot, make_window, tmp_path, cells_dir):
    empty = tmp_path / "no models"
    empty.mkdir()
    (empty / "junk.json").write_text("{not json")
    w = make_window(models_dir=empty, wait_model=False)
    qtbot.waitUntil(lambda: w.notices.banner.isVisible(), timeout=10_000)
    text = w.notices.banner.text()
    assert "No usable model" in text and str(empty) in text and "junk.json" in text
    # folders still open (cells listed, pending), nothing crashes
    with qtbot.waitSignal(w.opener.scanned, timeout=10_000):
        w.opener.open_paths([cells_dir])
    qtbot.waitUntil(lambda: len(w.cell_model.cells) == 8)
    assert not w.runs.running and not w.exports.can_export()


def test_close_with_unexported_reviews_asks(qtbot, make_window, cells_dir, monkeypatch):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(2)
    w.reviews.apply(SetLabel(Call.ALL))
    _wait_saved(qtbot, w)
    path = w.case_files.path
    answers = [CloseChoice.CANCEL]
    monkeypatch.setattr(Prompts, "ask_close", lambda self, n, since="": answers.pop(0))
    assert not w.close()  # cancelled: the window stays, the work stays
    assert w.isVisible() and path.exists()
    answers.append(CloseChoice.DISCARD)
    assert w.close()
    # closed normally: the store is kept (it is the case record), marked closed, and not offered for restore
    assert path.exists() and CaseStore.peek(path).get("closed_at")
    assert len(stored(path).reviews) == 1
    svc = EngineService([])
    try:
        found = []
        svc.find_orphans(SessionFiles(user_data_dir()), on_result=found.append)
        qtbot.waitUntil(lambda: bool(found), timeout=10_000)
        assert found == [[]]
    finally:
        svc.shutdown()


def test_unreadable_folder_and_missing_path_are_reported(qtbot, make_window, tmp_path):
    w = make_window()
    with qtbot.waitSignal(w.opener.scanned, timeout=10_000):
        w.opener.open_paths([tmp_path / "does not exist"])
    qtbot.waitUntil(lambda: any("not found" in m for _, m in w.prompts.messages))
    empty = tmp_path / "empty case"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with qtbot.waitSignal(w.opener.scanned, timeout=10_000):
        w.opener.open_paths([empty])
    qtbot.waitUntil(lambda: any(t == "No images found" for t, _ in w.prompts.messages))


@pytest.mark.parametrize("flag", ["--version", "--self-test"])
def test_version_and_self_test_run_before_any_qt_import(flag, tiny_models_dir, tmp_path):
    code = (
        "import sys\n"
        "from gui.app import main\n"
        "try:\n"
        f"    main([{flag!r}, '--models-dir', sys.argv[1], '--output', sys.argv[2]] if {flag!r} == '--self-test' "
        f"else [{flag!r}])\n"
        "except SystemExit as e:\n"
        "    print('EXIT', e.code)\n"
        "print('QT', any(m.startswith('PySide6') for m in sys.modules))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    p = subprocess.run(
        [sys.executable, "-c", code, str(tiny_models_dir), str(tmp_path / "st.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert "QT False" in p.stdout, p.stdout + p.stderr
    if flag == "--version":
        assert "LeukoScan 0." in p.stdout and "EXIT 0" in p.stdout
    else:
        assert "self-test:" in p.stdout  # the engine's verdict line (PASS or FAIL with tiny models)
        assert "EXIT 0" in p.stdout or "EXIT 1" in p.stdout


def test_command_line_paths_are_opened_and_classified(qtbot, tiny_models_dir, cells_dir):
    from gui.app import build_window, parse_args

    args = parse_args([str(cells_dir), "--models-dir", str(tiny_models_dir), "--model", "tiny_a", "--no-restore"])
    w = build_window(args)
    try:
        w.show()
        qtbot.waitUntil(
            lambda: (
                len(w.cell_model.cells) == 8
                and not w.runs.running
                and all(c.result is not None for c in w.cell_model.cells)
            ),
            timeout=30_000,
        )
        assert w.model_chooser.classifier.name == "tiny_a"
        assert str(cells_dir) in w.settings.recent_folders
    finally:
        w.doc.unexported = False
        w.close()


def test_export_to_an_unwritable_place_reports_and_keeps_work(qtbot, make_window, cells_dir, tmp_path):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.ALL))
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("x")
    with qtbot.waitSignal(w.exports.failed, timeout=10_000):
        w.exports.csv(blocker / "report.csv")
    assert any(t == "Export failed" for t, _ in w.prompts.messages)
    assert w.doc.unexported and w.doc.reviews  # nothing lost; export again elsewhere
    with qtbot.waitSignal(w.exports.written, timeout=10_000):
        w.exports.csv(tmp_path / "ok.csv")
    assert not w.doc.unexported


def test_bulk_accept_of_a_selection_and_settings_persist(qtbot, make_window, cells_dir, monkeypatch):
    from gui.dialogs import SettingsDialog
    from gui.settings import Settings

    monkeypatch.setattr(Prompts, "confirm_bulk_accept", lambda self, n, flagged: True)  # flagged cells: asks
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    wait_page_drawn(qtbot, w)
    w.browser.gallery.selectAll()
    assert w.reviews.apply(Accept()) == 8
    assert all(c.review is not None and c.review.label == c.prediction for c in w.cell_model.cells)
    assert w.reviews.apply(Clear()) == 8 and not w.doc.reviews
    dlg = SettingsDialog(w.settings, w)
    dlg.reviewer.setText("  A. Chen ")
    dlg.batch.setValue(4)
    dlg.thumb.setValue(160)
    dlg.device.setCurrentIndex(1)
    dlg.apply()
    fresh = Settings()  # a new reader of the same settings file
    assert (fresh.reviewer, fresh.batch_size, fresh.thumb_size, fresh.device) == ("A. Chen", 4, 160, "cpu")


def test_restore_skips_reviews_of_changed_images_and_reports_missing_folders(
    qtbot, make_window, cells_dir, tmp_path, monkeypatch
):
    from PIL import Image

    monkeypatch.setattr(Prompts, "confirm_bulk_accept", lambda self, n, flagged: True)
    w1 = make_window()
    open_and_classify(qtbot, w1, [cells_dir])
    wait_page_drawn(qtbot, w1)
    w1.browser.gallery.selectAll()
    w1.reviews.apply(Accept())
    gone = tmp_path / "gone"
    w1.doc.note_opened(str(gone), True)  # a folder (e.g. a network share) that is not there at restore
    _wait_saved(qtbot, w1)
    path = w1.case_files.path
    _crash(w1)
    changed = w1.cell_model.cells[0].path
    with Image.open(changed) as im:
        im.rotate(90).save(changed)  # same name, different image: its review must not be re-applied
    monkeypatch.setattr(Prompts, "ask_restore", lambda self, p, meta: True)
    w2 = make_window(check_orphans=True)
    qtbot.waitUntil(
        lambda: any(t == "Some reviews were not re-applied" for t, _ in w2.prompts.messages), timeout=30_000
    )
    qtbot.waitUntil(lambda: any(t == "Some paths could not be opened" for t, _ in w2.prompts.messages), timeout=10_000)
    assert any(t == "Some paths could not be opened" and str(gone) in m for t, m in w2.prompts.messages)
    by_key = {c.key: c for c in w2.cell_model.cells}
    assert by_key[str(changed)].review is None and by_key[str(changed)].stale is not None
    assert all(c.review is not None for k, c in by_key.items() if k != str(changed))
    qtbot.waitUntil(lambda: not w2.runs.running and by_key[str(changed)].result is not None, timeout=30_000)
    _wait_saved(qtbot, w2)
    events = CaseStore.open(path, create=False)
    try:
        stale = [e for e in events.review_events() if e["action"] == "stale"]
    finally:
        events.close()
    assert [e["path"] for e in stale] == [str(changed)]  # set aside in the audit trail, not deleted


def test_autosave_failure_is_reported_once(qtbot, make_window, cells_dir, monkeypatch):
    w = make_window()
    open_and_classify(qtbot, w, [cells_dir])
    shown = []
    real_show = Prompts.show_message
    monkeypatch.setattr(
        Prompts, "show_message", lambda self, title, text, *a: shown.append(title) or real_show(self, title, text, *a)
    )
    from engine.case import ops, writer

    real_write = writer.WRITES[ops.LogReviews]

    def failing(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(writer.WRITES, ops.LogReviews, failing)
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.ALL))
    qtbot.waitUntil(lambda: any(t == "Autosave failed" for t, _ in w.prompts.messages), timeout=10_000)
    assert "No space left" in [m for t, m in w.prompts.messages if t == "Autosave failed"][0]
    w.browser.select_row(1)
    w.reviews.apply(SetLabel(Call.HEM))
    qtbot.waitUntil(lambda: [t for t, _ in w.prompts.messages].count("Autosave failed") == 2, timeout=10_000)
    assert shown.count("Autosave failed") == 1  # one dialog; later failures go to the status bar
    assert "Autosave failed" in w.statusBar().currentMessage()
    monkeypatch.setitem(writer.WRITES, ops.LogReviews, real_write)
    w.browser.select_row(2)
    w.reviews.apply(SetLabel(Call.HEM))  # the writer carries on with the next change, and writes the failed ones first
    _wait_saved(qtbot, w)
    on_disk = stored(w.case_files.path)
    assert {c.key for c in w.cell_model.cells[:3]} <= set(on_disk.reviews)  # nothing lost while the disk was full
    events = CaseStore.open(w.case_files.path, create=False).review_events()
    assert [e["path"] for e in events][-3:] == [c.key for c in w.cell_model.cells[:3]]  # in the order they were made


def test_corrupt_session_store_is_reported_and_moved_aside(qtbot, make_window):
    sessions = SessionFiles(user_data_dir()).dir
    sessions.mkdir(parents=True, exist_ok=True)
    bad = sessions / "session-x.db"
    data = os.urandom(8192)
    bad.write_bytes(data)  # no lock: looks like the store of an app that was killed
    w = make_window(check_orphans=True)
    qtbot.waitUntil(lambda: any(t == "Case store could not be read" for t, _ in w.prompts.messages), timeout=10_000)
    msg = [m for t, m in w.prompts.messages if t == "Case store could not be read"][0]
    assert str(bad) in msg and "not a LeukoScan case file" in msg
    # not a LeukoScan store at all (random bytes): never renamed, never deleted (case-record issue, item 5)
    assert bad.read_bytes() == data and not (sessions / "session-x.db.corrupt").exists()
    assert w.case_files.path is not None and w.case_files.path != bad  # the window still autosaves


def test_open_case_store_never_renames_a_file_that_is_not_a_store(qtbot, make_window, tmp_path):
    """Case-record issue, item 5: File > Open case store on a CSV (or another program's SQLite file) renamed it
    to .corrupt."""
    import sqlite3

    w = make_window()
    for f, make in (
        (tmp_path / "report.csv", lambda p: p.write_text("path,status\n")),
        (tmp_path / "other.db", lambda p: sqlite3.connect(p).execute("CREATE TABLE t(x)").connection.commit()),
    ):
        make(f)
        before = f.read_bytes()
        w.prompts.messages.clear()
        w.opener.open_store(f)
        qtbot.waitUntil(lambda: any(t == "Case store could not be read" for t, _ in w.prompts.messages), timeout=10_000)
        assert f.exists() and f.read_bytes() == before and not f.with_name(f.name + ".corrupt").exists()


def test_open_case_store_written_by_the_cli_shows_its_results_without_a_run(
    qtbot, make_window, cells_dir, tiny_models_dir, tmp_path, monkeypatch
):
    from engine.cli import main

    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "no bundled models"))
    db = tmp_path / "overnight.db"
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "cli.csv"),
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
    w = make_window()
    runs = []
    w.runs.finished.connect(lambda *a: runs.append(a))
    monkeypatch.setattr("gui.opening.QFileDialog.getOpenFileName", lambda *a, **k: (str(db), ""))
    w.acts["open_store"].trigger()
    qtbot.waitUntil(lambda: len(w.cell_model.cells) == 8, timeout=10_000)
    assert all(c.result is not None and c.prediction in ("ALL", "HEM") for c in w.cell_model.cells)
    assert w.case_files.path == db
    qtbot.waitUntil(lambda: scans_settled(w), timeout=10_000)
    assert runs == [] and w.run_panel.last_run is None and not w.runs.running
    with open(tmp_path / "cli.csv", newline="", encoding="utf-8") as fh:
        import csv

        cli = {r["path"]: r["p_all"] for r in csv.DictReader(fh)}
    assert {c.key: f"{c.p_all:.4f}" for c in w.cell_model.cells} == cli
    qtbot.waitUntil(lambda: bool(w.side.summary.counts) and w.side.summary.counts[0].classified == 8, timeout=5_000)
    # the window writes its reviews into that store
    w.browser.select_row(0)
    w.reviews.apply(SetLabel(Call.ALL))
    _wait_saved(qtbot, w)
    assert w.cell_model.cells[0].key in stored(db).reviews


def test_a_case_store_of_another_model_switches_to_it_instead_of_classifying_again(
    qtbot, make_window, cells_dir, tiny_models_dir, tmp_path, monkeypatch
):
    """An overnight batch classified with tiny_a opened in a window running the ensemble: the window
    switches to tiny_a and shows the stored results; nothing is classified."""
    from engine.cli import main

    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "no bundled models"))
    db = tmp_path / "overnight.db"
    assert (
        main(
            [
                "classify",
                str(cells_dir),
                "--out",
                str(tmp_path / "cli.csv"),
                "--store",
                str(db),
                "--model",
                "tiny_a",
                "--models-dir",
                str(tiny_models_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    w = make_window()
    assert w.model_chooser.classifier.name == "tiny_ensemble"
    runs = []
    w.runs.resultsStored.connect(lambda *a: runs.append(a))
    w.opener.open_store(db)
    qtbot.waitUntil(
        lambda: (
            w.model_chooser.classifier is not None
            and w.model_chooser.classifier.name == "tiny_a"
            and len(w.cell_model.cells) == 8
        ),
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: scans_settled(w), timeout=10_000)
    assert runs == [] and not w.runs.running
    assert all(c.result is not None and c.result.model == "tiny_a" for c in w.cell_model.cells)
    assert w.model_chooser.combo.currentData() == "tiny_a"


def test_unwritable_user_folder_still_works_and_says_autosave_is_off(qtbot, tmp_path, monkeypatch, make_window):
    blocked = tmp_path / "user data is a file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("LEUKOSCAN_DATA_DIR", str(blocked))
    w = make_window()
    qtbot.waitUntil(lambda: any(t == "Autosave unavailable" for t, _ in w.prompts.messages), timeout=5_000)
    assert w.case_files.path is None and w.model_chooser.classifier is not None


def test_unexpected_error_is_logged_and_shown_once(make_window, tmp_path, monkeypatch):
    import logging

    from gui.app import install_excepthook

    w = make_window()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr(sys, "__excepthook__", lambda *a: None)  # keep the test output clean
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("leukoscan").addHandler(handler)
    try:
        install_excepthook(w, tmp_path / "leukoscan.log")
        for _ in range(2):
            try:
                raise KeyError("boom")
            except KeyError:
                sys.excepthook(*sys.exc_info())
    finally:
        logging.getLogger("leukoscan").removeHandler(handler)
    assert [t for t, _ in w.prompts.messages].count("Unexpected error") == 1
    errors = [r for r in records if r.name == "leukoscan"]
    assert len(errors) == 2 and "KeyError" in errors[0].getMessage()


def test_status_bar_shows_the_provider_and_warns_when_cuda_is_not_obtained(qtbot, make_window):
    import onnxruntime as ort

    w = make_window(device="cuda")
    text = w.model_chooser.device_label.text()
    if "CUDAExecutionProvider" in ort.get_available_providers() and w.model_chooser.classifier.device_label == "CUDA":
        assert "CUDA" in text and "⚠" not in text
    else:  # CPU-only onnxruntime (CI): asked for CUDA, got the CPU, and the status bar says so
        assert "Device: <b>CPU</b>" in text and "⚠" in text and "CUDA" in text
        assert w.model_chooser.classifier.warnings


def test_model_failing_mid_run_keeps_the_cells_done(qtbot, make_window, cells_dir, monkeypatch):
    from engine.card import ModelError
    from engine.run import operator as operator_mod

    real = operator_mod.classify_batches  # what the app's run (the classification operator) iterates

    def breaks_after_three(items, classifier, **kw):
        for i, batch in enumerate(real(items, classifier, **{**kw, "batch_size": 1})):
            if i == 3:
                raise ModelError("onnxruntime: out of memory while running batch 1")
            yield batch

    monkeypatch.setattr(operator_mod, "classify_batches", breaks_after_three)
    w = make_window()
    with qtbot.waitSignal(w.runs.failed, timeout=30_000):
        w.opener.open_paths([cells_dir])
    qtbot.waitUntil(lambda: any(t == "Classification stopped" for t, _ in w.prompts.messages), timeout=5_000)
    assert "out of memory" in [m for t, m in w.prompts.messages if t == "Classification stopped"][0]
    assert sum(c.result is not None for c in w.cell_model.cells) == 3 and not w.runs.running
    monkeypatch.setattr(operator_mod, "classify_batches", real)
    with qtbot.waitSignal(w.runs.finished, timeout=30_000):
        w.run_panel.classify_remaining()
    assert all(c.result is not None for c in w.cell_model.cells)
