"""scan(), classify() and decide(): order, errors as rows, progress, bounded prefetch, cancellation."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine import pipeline as pipeline_mod
from engine.card import ModelError
from engine.pipeline import classify, decide, natural_key, scan
from engine.preprocess import preprocess_file
from engine.registry import Registry
from tinymodels import reference_p_all


def _touch(p: Path, data: bytes = b"x") -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


# ------------------------------------------------------------------------------------------ scan


def test_scan_recursive_sorted_hidden_and_non_images_skipped(tmp_path):
    root = tmp_path / "case"
    for rel in ["cell 10.bmp", "cell 2.BMP", "Cell 1.png", "b/x.tif", "a/z.jpg", "a/y/w.webp", "notes.txt",
                ".hidden.bmp", ".thumbs/t.bmp", "a/.DS_Store", "a/._z.jpg", "README"]:
        _touch(root / rel)
    items = scan([root])
    got = [(it.folder, it.file) for it in items]
    assert got == [(".", "Cell 1.png"), (".", "cell 2.BMP"), (".", "cell 10.bmp"),
                   ("a", "z.jpg"), ("a/y", "w.webp"), ("b", "x.tif")]
    assert all(it.root == root and it.path.is_absolute() and it.path.parent.name for it in items)


def test_scan_file_argument_and_missing_path(tmp_path):
    _touch(tmp_path / "one.bmp")
    _touch(tmp_path / "odd.txt")
    items = scan([tmp_path / "one.bmp", tmp_path / "odd.txt"])
    assert [(it.file, it.folder, it.root) for it in items] == [("one.bmp", ".", tmp_path), ("odd.txt", ".", tmp_path)]
    with pytest.raises(FileNotFoundError, match="nope: no such file or folder"):
        scan([tmp_path / "nope"])


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_scan_symlink_loops_and_duplicates(tmp_path):
    root = tmp_path / "r"
    _touch(root / "sub" / "a.bmp")
    _touch(root / "b.bmp")
    os.symlink(root, root / "sub" / "loop")  # sub/loop -> r  (a cycle)
    os.symlink(tmp_path / "missing", root / "dangling.bmp")
    items = scan([root])
    assert sorted(it.file for it in items) == ["a.bmp", "b.bmp"]
    # the same files reached through two PATHs are listed once
    assert len(scan([root, root / "sub", root / "b.bmp"])) == 2


def test_scan_unlistable_folder_is_reported(tmp_path, monkeypatch):
    _touch(tmp_path / "ok.bmp")
    _touch(tmp_path / "locked" / "x.bmp")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(pipeline_mod.os, "scandir", scandir)
    warns: list[str] = []
    assert [it.file for it in scan([tmp_path], warnings=warns)] == ["ok.bmp"]
    assert len(warns) == 1 and "locked: folder skipped, cannot be listed (Permission denied)" in warns[0]


def test_natural_key():
    names = ["c10", "C2", "c1", "c2", "b"]
    assert sorted(names, key=natural_key) == ["b", "c1", "C2", "c2", "c10"]


def test_scan_real_dataset_layout(shared_data_dir):
    items = scan([shared_data_dir / "training_data"])
    assert len(items) == 5946
    assert {it.folder for it in items} == {"fold_0/all", "fold_0/hem", "fold_1/all", "fold_1/hem"}
    assert items[0].folder == "fold_0/all"


# ------------------------------------------------------------------------------------------ decide


def test_decide():
    assert decide(0.7, 0.5, 0.1) == ("ALL", False)
    assert decide(0.5, 0.5, 0.1) == ("ALL", True)  # >= threshold is ALL
    assert decide(0.45, 0.5, 0.1) == ("HEM", True)
    assert decide(0.39, 0.5, 0.1) == ("HEM", False)
    assert decide(0.61, 0.5, 0.1) == ("ALL", False)
    assert decide(0.95, 0.5, 0.1, members_disagree=True) == ("ALL", True)
    assert decide(0.3, 0.2, 0.0) == ("ALL", False)
    assert decide(None, 0.5, 0.1) == ("", False)
    assert decide(float("nan"), 0.5, 0.1) == ("", False)


# ------------------------------------------------------------------------------------------ classify


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_classify_bad_input_folder(bad_input, tiny_models_dir, batch_size):
    clf = Registry([tiny_models_dir]).load("tiny_a")
    items = scan([bad_input.path])
    calls = []
    results = list(classify(items, clf, batch_size=batch_size, progress=lambda d, t: calls.append((d, t))))
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.path for r in results] == [it.path for it in items]
    assert calls == [(i + 1, len(items)) for i in range(len(items))]
    by_rel = {(r.file if r.folder == "." else f"{r.folder}/{r.file}"): r for r in results}
    assert set(by_rel) == bad_input.rows
    spec = clf.preprocessings[0]
    for rel in bad_input.ok:
        r = by_rel[rel]
        assert r.status == "ok" and r.error == "" and len(r.sha256) == 64
        expect = reference_p_all(preprocess_file(r.path, spec)[None], seed=0)[0]
        assert r.p_all == pytest.approx(expect, rel=1e-5)
    for rel, word in bad_input.errors.items():
        r = by_rel[rel]
        assert r.status == "error" and r.p_all is None and word in r.error, (rel, r.error)
    assert by_rel["broken/empty.bmp"].sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_classify_ensemble_preprocesses_per_member(cells_dir, tiny_models_dir):
    reg = Registry([tiny_models_dir])
    ens = reg.load("tiny_ensemble")
    items = scan([cells_dir])
    res = list(classify(items, ens, batch_size=5))
    sa, sb = reg.get("tiny_a").preprocessing, reg.get("tiny_b").preprocessing
    for r in res:
        pa = reference_p_all(preprocess_file(r.path, sa)[None], 0)[0]
        pb = reference_p_all(preprocess_file(r.path, sb)[None], 3)[0]
        assert r.member_p["tiny_a"] == pytest.approx(pa, rel=1e-5)
        assert r.member_p["tiny_b"] == pytest.approx(pb, rel=1e-5)
        assert r.p_all == pytest.approx((pa + pb) / 2, rel=1e-5)
        assert r.members_disagree == ((pa >= 0.5) != (pb >= 0.5))


def test_classify_empty_and_bad_batch_size(tiny_models_dir):
    clf = Registry([tiny_models_dir]).load("tiny_a")
    assert list(classify([], clf)) == []
    with pytest.raises(ValueError):
        list(classify(scan([Path(__file__)]), clf, batch_size=0))


def test_cancel_from_progress_callback_stops_at_once(cells_dir, tiny_models_dir):
    clf = Registry([tiny_models_dir]).load("tiny_a")
    cancel = threading.Event()

    def progress(done, total):
        if done == 3:
            cancel.set()

    res = list(classify(scan([cells_dir]), clf, batch_size=2, progress=progress, cancel=cancel))
    assert len(res) == 3


def test_cancel_aborts_a_running_batch(cells_dir, tiny_models_dir, monkeypatch):
    """A long inference (e.g. VGG19 on a slow CPU) is aborted through RunOptions.terminate."""
    clf = Registry([tiny_models_dir]).load("tiny_a")
    started = threading.Event()

    def slow_predict(inputs, run_options=None):
        started.set()
        t0 = time.monotonic()
        while not run_options.terminate:  # what onnxruntime does inside session.run
            if time.monotonic() - t0 > 20:
                raise AssertionError("terminate was never requested")
            time.sleep(0.01)
        raise RuntimeError("Exiting due to terminate flag being set to true.")

    monkeypatch.setattr(clf, "predict", slow_predict)
    cancel = threading.Event()
    out: list = []
    t = threading.Thread(target=lambda: out.extend(classify(scan([cells_dir]), clf, cancel=cancel)))
    t.start()
    assert started.wait(10)
    t0 = time.monotonic()
    cancel.set()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 1.0
    assert out == []


def test_model_failure_is_a_model_error(cells_dir, tiny_models_dir, monkeypatch):
    clf = Registry([tiny_models_dir]).load("tiny_a")

    def broken(inputs, run_options=None):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : boom")

    monkeypatch.setattr(clf, "predict", broken)
    with pytest.raises(ModelError, match="model 'tiny_a' failed on a batch: .*boom"):
        list(classify(scan([cells_dir]), clf))


def test_non_finite_scores_become_error_rows(cells_dir, tiny_models_dir, monkeypatch):
    clf = Registry([tiny_models_dir]).load("tiny_a")
    real = clf.predict

    def nan_first(inputs, run_options=None):
        p = real(inputs, run_options)
        p.p_all[0] = np.nan
        return p

    monkeypatch.setattr(clf, "predict", nan_first)
    res = list(classify(scan([cells_dir]), clf, batch_size=4))
    assert [r.status for r in res] == ["error", "ok", "ok", "ok", "error", "ok", "ok", "ok"]
    assert res[0].error == "the model returned a non-finite score"


def test_prefetch_is_bounded(tmp_path, cells_dir, tiny_models_dir, monkeypatch):
    """A slow consumer does not make the pipeline read the whole folder into memory."""
    src = next(cells_dir.glob("*.bmp"))
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        os.link(src, many / f"c{i:03d}.bmp")
    clf = Registry([tiny_models_dir]).load("tiny_a")
    loads = []
    real_load = pipeline_mod.load_item
    monkeypatch.setattr(pipeline_mod, "load_item", lambda p, s: (loads.append(p), real_load(p, s))[1])
    gen = classify(scan([many]), clf, batch_size=8, prefetch_batches=2)
    next(gen)
    time.sleep(0.5)
    assert len(loads) <= 8 * 3  # the batch being consumed + 2 prefetched batches
    rest = list(gen)
    assert len(rest) == 299 and len(loads) == 300
