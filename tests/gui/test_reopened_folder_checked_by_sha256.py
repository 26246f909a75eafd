"""A folder opened again is its case only if its images are (issue 26 items 2 and 4, the app's half): the app compares
them with the case by sha256 on a worker, so an image of a signed-off case swapped for one of the same size with its
mtime put back reopens the case (with the reason logged), and a folder now holding another sample's images is never
pooled into the old case: it is said, and opened as a new case only when the user asks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gui_helpers import make_window, open_and_classify, stored  # noqa: F401  (fixture + helper)

from engine.case.store import CaseStore
from gui.case_actions import CaseActions
from gui.prompts import CloseChoice, Prompts


def _folder(cells_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "incoming"
    shutil.copytree(cells_dir, d)
    return d


def _close_all(w) -> Path:
    w.opener.close_cases()
    assert not w.doc.cells
    return Path(w.settings.recent_stores[0])


def _sign_off(w, sample_id: str) -> None:
    case = next(iter(w.doc.cases.values()))
    w.doc.set_sample_id(case, sample_id)
    for c in w.cell_model.cells:
        w.doc.mark_shown([c], "walk")
    w.doc.review([c for c in w.cell_model.cells if c.left_before_signoff], "accept", "tech1")
    assert w.case_actions.sign_off()


def test_an_image_of_a_signed_off_case_swapped_with_the_same_size_and_mtime_reopens_it(
    qtbot, make_window, cells_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(CaseActions, "ask_comment", lambda self, c, r: ("", True))
    monkeypatch.setattr(Prompts, "ask_close", lambda self, n, at="": CloseChoice.DISCARD)
    folder = _folder(cells_dir, tmp_path)
    w = make_window()
    open_and_classify(qtbot, w, [folder])
    _sign_off(w, "BM-26-4")
    kept = _close_all(w)
    victim = sorted(folder.iterdir())[0]
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF  # one pixel of another image: same size
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # and its mtime put back
    assert (victim.stat().st_size, victim.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    w.opener.open_paths([str(folder)])
    qtbot.waitUntil(lambda: w.case_files.path == kept and bool(w.doc.cells), timeout=20_000)
    case = next(iter(w.doc.cases.values()))
    qtbot.waitUntil(lambda: case.signoff is None, timeout=20_000)  # noticed: no longer what was signed
    qtbot.waitUntil(lambda: not w.runs.running and not w.doc.unclassified(), timeout=30_000)  # classified again
    assert w.bridge.store.flush(10)
    last = w.bridge.store.case_events()[-1]
    assert (
        last["action"] == "reopen"
        and "changed on disk after the sign-off" in last["text"]
        and victim.name in last["text"]
    )


def test_a_folder_holding_another_sample_is_never_pooled_into_its_old_case(
    qtbot, make_window, cells_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(Prompts, "ask_close", lambda self, n, at="": CloseChoice.DISCARD)
    answers, asked = [False, True], []
    monkeypatch.setattr(
        Prompts, "ask_other_sample", lambda self, text: asked.append(text) or answers.pop(0), raising=False
    )
    folder = _folder(cells_dir, tmp_path)
    w = make_window()
    open_and_classify(qtbot, w, [folder])
    n = len(w.doc.cells)
    w.doc.set_sample_id(next(iter(w.doc.cases.values())), "BM-26-2")
    kept = _close_all(w)
    for i, f in enumerate(sorted(folder.iterdir())):  # the folder now holds another patient's cells
        data = bytearray(f.read_bytes())
        data[-10] ^= 0xFF
        (folder / f"other_{i}.bmp").write_bytes(bytes(data))
        f.unlink()

    w.opener.open_paths([str(folder)])  # its record opens, and its images are checked
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=20_000)
    assert "not those of the case BM-26-2" in asked[0] and "were not added" in asked[0]
    assert w.case_files.path == kept and len(w.doc.cells) == n  # kept as it was, nothing pooled
    assert not any(Path(c.key).name.startswith("other_") for c in w.doc.cells)
    qtbot.waitUntil(lambda: not w.runs.running and not w.runs.held, timeout=10_000)
    assert len(stored(kept).cells) == n

    w.opener.open_paths([str(folder)])  # asked again; this time: open it as a new case
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=20_000)
    qtbot.waitUntil(lambda: w.case_files.path not in (None, kept) and len(w.doc.cells) == n, timeout=20_000)
    qtbot.waitUntil(lambda: not w.runs.running and not w.doc.unclassified(), timeout=30_000)
    assert all(Path(c.key).name.startswith("other_") for c in w.doc.cells)
    assert next(iter(w.doc.cases.values())).sample_id == ""  # a new case: the old one's sample id is not taken
    with CaseStore.open(kept, create=False, read_only=True) as old:  # the old record is whole
        doc = old.load()
        assert len(doc.cells) == n and not any(Path(c.key).name.startswith("other_") for c in doc.cells)
        assert old.verify() is None
