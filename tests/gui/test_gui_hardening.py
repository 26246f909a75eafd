"""What a user runs into: a file deleted after classification, a read-only sessions folder, a P(ALL)
that rounds across the threshold."""

from __future__ import annotations

import errno
import math
import os
import random
import shutil

import pytest
from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)

import gui.session as session_mod
from gui.cells import COL, p_all_text
from gui.session import SessionFiles, new_session_id


def test_vanished_file_says_so_instead_of_loading_forever(qtbot, make_window, cells_dir, tmp_path):
    case = tmp_path / "case"
    shutil.copytree(cells_dir, case)
    w = make_window()
    open_and_classify(qtbot, w, [case])
    gone = sorted(case.glob("*.bmp"))[-1]
    gone.unlink()
    w.browser.select_row(w.browser.proxy.proxy_row_of(str(gone)))
    qtbot.waitUntil(lambda: w.preview.view.text.startswith("File no longer available"), timeout=10_000)
    assert str(gone) in w.preview.view.text
    w.browser.select_row(0 if w.browser.proxy.proxy_row_of(str(gone)) else 1)
    w.browser.select_row(w.browser.proxy.proxy_row_of(str(gone)))  # again: known at once, no load to wait for
    assert w.preview.view.text.startswith("File no longer available")


def test_a_session_held_by_another_window_is_reported_as_such(tmp_path):
    first = SessionFiles(tmp_path)
    path = first.claim(first.new_path(new_session_id()))
    with pytest.raises(OSError, match=f"the case store {path.name} is in use by another LeukoScan window"):
        SessionFiles(tmp_path).claim(path)
    first.release()
    assert SessionFiles(tmp_path).claim(path) == path  # free again once released


def test_a_read_only_sessions_folder_is_reported_with_the_real_reason(tmp_path, monkeypatch):
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    if os.name == "posix" and os.geteuid() != 0:
        sessions.chmod(0o555)
    else:  # root writes anywhere: make the folder behave as a read-only file system does

        def no_temp_file(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        class ReadOnlyLock(session_mod.StoreLock):
            def acquire(self):
                no_temp_file()

        monkeypatch.setattr(session_mod, "StoreLock", ReadOnlyLock)
        monkeypatch.setattr("tempfile.TemporaryFile", no_temp_file)
    try:
        with pytest.raises(OSError) as exc:
            files = SessionFiles(tmp_path)
            files.claim(files.new_path(new_session_id()))
    finally:
        sessions.chmod(0o755)
    msg = str(exc.value)
    assert "another LeukoScan window" not in msg
    assert msg.startswith(f"cannot write to the sessions folder {sessions}: ")
    assert any(why in msg for why in ("Permission denied", "Read-only file system"))


@pytest.mark.parametrize(
    "p, label, threshold, digits, text",
    [
        (0.4978, "HEM", 0.50, 2, "0.498"),  # "HEM 0.50" would read as ALL
        (0.49996, "HEM", 0.50, 2, "0.499"),  # even 3 digits round up to 0.500: round down instead
        (0.5, "ALL", 0.50, 2, "0.50"),
        (0.4449, "ALL", 0.4449, 2, "0.445"),  # "ALL 0.44" would read as HEM
        (0.73, "ALL", 0.50, 2, "0.73"),
        (0.4978, None, 0.50, 2, "0.50"),  # no class to contradict
    ],
)
def test_shown_p_all_never_contradicts_the_class(p, label, threshold, digits, text):
    assert p_all_text(p, label, threshold, digits) == text


def test_shown_p_all_agrees_with_the_class_for_any_value():
    rng = random.Random(10)
    for _ in range(20_000):
        p, t, d = rng.random(), rng.choice([0.5, 0.45, 0.3, rng.random()]), rng.choice([2, 3])
        p = rng.choice([p, t + rng.uniform(-1e-3, 1e-3)])
        p = min(max(p, 0.0), 1.0)
        label = "ALL" if p >= t else "HEM"
        shown = float(p_all_text(p, label, t, d))
        assert (shown >= t) == (label == "ALL"), (p, t, d, shown)
        assert math.isclose(shown, p, abs_tol=10.0**-d)


def test_table_and_preview_show_a_p_all_that_agrees_with_the_class(qtbot, make_window, cells_dir):
    w = make_window(model="tiny_a")
    qtbot.waitUntil(
        lambda: w.model_chooser.classifier is not None and w.model_chooser.classifier.name == "tiny_a", timeout=30_000
    )
    open_and_classify(qtbot, w, [cells_dir])
    # a threshold just above a cell's P(ALL), below its 3-digit rounding: plain rounding would say ALL
    cell = next((c for c in w.cell_model.cells if round(c.p_all, 3) > c.p_all + 1e-6), None)
    if cell is None:
        pytest.skip("no cell whose P(ALL) rounds up")
    w.set_threshold((cell.p_all + round(cell.p_all, 3)) / 2)
    assert cell.prediction == "HEM"
    row = w.cell_model.row_of(cell.key)
    shown = w.cell_model.data(w.cell_model.index(row, COL["P(ALL)"]))
    assert float(shown) < w.doc.threshold and shown != f"{cell.p_all:.3f}"
    w.browser.select_row(w.browser.proxy.proxy_row_of(cell.key))
    assert f"P(ALL) = <b>{shown}</b>" in w.preview.details.text()
