"""Issue 26 items 2 and 4 (``classify --store``): a case is its images, and a signed-off case's numbers never move
silently.

Before: replacing ``incoming/``'s images by another patient's and classifying again into the same store gave one
case of both (exit 0, no warning); on a signed-off case a new ``--threshold`` or ``--model`` moved its numbers
(exit 0, no event), a deleted image gave exit 0, and an image swapped for one of the same size with its mtime put
back was not noticed (size and mtime were compared, not sha256)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from engine.case.store import CaseStore
from engine.cli import main

EXIT_SIGNED_OFF, EXIT_NOT_THE_CASE = 5, 6


def _patients(cells_dir: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """``incoming/`` holding patient A's four cells, and patient B's four other cells aside."""
    files = sorted(cells_dir.iterdir())
    a, b, incoming = tmp_path / "A", tmp_path / "B", tmp_path / "incoming"
    for d, part in ((a, files[:4]), (b, files[4:])):
        d.mkdir()
        for f in part:
            shutil.copy2(f, d / f.name)
    shutil.copytree(a, incoming)
    return incoming, a, b


def _classify(db: Path, folder: Path, tmp_path: Path, models: Path, *more: str) -> int:
    common = ["--model", "tiny_ensemble", "--models-dir", str(models), "--no-progress"]
    return main(["classify", str(folder), "--out", str(tmp_path / "r.csv"), "--store", str(db), *common, *more])


def _replace(folder: Path, other: Path, same_names: bool) -> None:
    olds = sorted(folder.iterdir())
    for f in olds:
        f.unlink()
    for i, f in enumerate(sorted(other.iterdir())):
        shutil.copy2(f, folder / (olds[i].name if same_names else f.name))


def test_another_patients_images_in_the_same_folder_are_refused_not_pooled(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    for same_names in (False, True):
        run = tmp_path / f"names-{same_names}"
        run.mkdir()
        incoming, _a, b = _patients(cells_dir, run)
        db = run / "case.leukoscan"
        assert _classify(db, incoming, run, tiny_models_dir) == 0
        before = db.read_bytes()
        _replace(incoming, b, same_names)
        capsys.readouterr()
        assert _classify(db, incoming, run, tiny_models_dir) == EXIT_NOT_THE_CASE
        err = capsys.readouterr().err
        assert "not the case stored for it" in err and "0 of its 4 images are still there" in err
        assert db.read_bytes() == before  # nothing written: the stored case is patient A's alone
        store = CaseStore.open(db, create=False, read_only=True)
        try:
            assert len(store.load().cells) == 4
        finally:
            store.close()


def test_images_added_to_an_open_case_are_still_its_images(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    incoming, _a, b = _patients(cells_dir, tmp_path)
    db = tmp_path / "case.leukoscan"
    assert _classify(db, incoming, tmp_path, tiny_models_dir) == 0
    shutil.copy2(sorted(b.iterdir())[0], incoming / "late.bmp")  # the scanner still writing: same case
    assert _classify(db, incoming, tmp_path, tiny_models_dir) == 0
    (incoming / "late.bmp").unlink()
    sorted(incoming.iterdir())[0].unlink()
    capsys.readouterr()
    assert _classify(db, incoming, tmp_path, tiny_models_dir) == 0  # removed, none new: said, not refused
    assert "2 image(s) of incoming are no longer in" in capsys.readouterr().err


def _signed(cells_dir, tiny_models_dir, tmp_path) -> tuple[Path, Path]:
    incoming, _a, _b = _patients(cells_dir, tmp_path)
    db = tmp_path / "case.leukoscan"
    assert _classify(db, incoming, tmp_path, tiny_models_dir) == 0
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    doc.review([c for c in doc.cells if c.status == "ok"], "accept", "ann")
    (case,) = doc.cases.values()
    doc.set_sample_id(case, "BM-1")
    doc.sign_off(case, "Dr. Ada")
    store.close()
    return incoming, db


def _refused(capsys, db: Path, run, *words: str) -> None:
    before = db.read_bytes()
    capsys.readouterr()
    assert run() == EXIT_SIGNED_OFF
    err = capsys.readouterr().err
    assert "signed-off case(s) would change" in err and all(w in err for w in words), err
    assert db.read_bytes() == before


def test_a_signed_off_case_refuses_another_threshold_or_model(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    incoming, db = _signed(cells_dir, tiny_models_dir, tmp_path)
    assert _classify(db, incoming, tmp_path, tiny_models_dir) == 0  # the same run again: nothing moves
    _refused(
        capsys,
        db,
        lambda: _classify(db, incoming, tmp_path, tiny_models_dir, "--threshold", "0.3"),
        "signed off with tiny_ensemble",
        "threshold 0.300",
    )
    models = ["--models-dir", str(tiny_models_dir), "--no-progress"]
    _refused(
        capsys,
        db,
        lambda: main(
            [
                "classify",
                str(incoming),
                "--out",
                str(tmp_path / "m.csv"),
                "--store",
                str(db),
                "--model",
                "tiny_a",
                *models,
            ]
        ),
        "this run: tiny_a",
    )
    assert _classify(db, incoming, tmp_path, tiny_models_dir, "--threshold", "0.3", "--reopen", "new cut-off") == 0
    store = CaseStore.open(db, create=False, read_only=True)
    try:
        assert [e["action"] for e in store.case_events()] == ["sign_off", "reopen"]
        assert "new cut-off" in store.case_events()[-1]["text"]
    finally:
        store.close()


def test_a_signed_off_case_notices_a_deleted_or_swapped_image(
    cells_dir, tiny_models_dir, tmp_path, capsys, _no_bundled_models
):
    incoming, db = _signed(cells_dir, tiny_models_dir, tmp_path)
    victim = sorted(incoming.iterdir())[1]
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-40:] = bytes(255 - b for b in data[-40:])  # other pixels, the same size ...
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the mtime put back
    assert victim.stat().st_size == st.st_size and victim.stat().st_mtime_ns == st.st_mtime_ns
    _refused(capsys, db, lambda: _classify(db, incoming, tmp_path, tiny_models_dir), "1 changed image(s)")
    victim.unlink()
    _refused(capsys, db, lambda: _classify(db, incoming, tmp_path, tiny_models_dir), "1 gone image(s)")


def test_an_interrupted_store_run_is_partial(
    cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys, _no_bundled_models
):
    """Issue 26 item 6: SIGTERM during ``classify --store`` gave exit 0, a full report and ``"complete": true``
    (the cells not reached counted as rows); now as without --store: 143, only ``.partial.csv``, complete false.
    The same mechanism as the interruption tests without --store (a signal sent to the run itself)."""
    import json
    import signal

    from engine.case.headless import HeadlessRun

    real_add, done = HeadlessRun.add, []

    def add_then_sigterm(self, result):  # the operator's case file sink stores each result
        done.append(1)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_add(self, result)

    monkeypatch.setattr(HeadlessRun, "add", add_then_sigterm)
    big = tmp_path / "big"
    big.mkdir()
    for i, src in enumerate(sorted(cells_dir.glob("*.bmp")) * 5):
        os.link(src, big / f"c{i:03d}.bmp")
    db, out = tmp_path / "case.leukoscan", tmp_path / "r.csv"
    common = ["--model", "tiny_a", "--models-dir", str(tiny_models_dir), "--batch-size", "2", "--no-progress"]
    capsys.readouterr()
    assert main(["classify", str(big), "--out", str(out), "--store", str(db), "--json", *common]) == 143
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert doc["status"] == "interrupted" and doc["exit_code"] == 143 and doc["complete"] is False
    assert not out.exists() and doc["files"]["partial"] == str(tmp_path / "r.partial.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.partial.csv", encoding="utf-8")))
    assert 0 < len(rows) < 40 and all(r["status"] == "ok" for r in rows) and "interrupted after" in cap.err
    store = CaseStore.open(db, create=False, read_only=True)  # what was done is kept for the next run
    try:
        assert 0 < sum(c.status == "ok" for c in store.load().cells) < 40
    finally:
        store.close()
