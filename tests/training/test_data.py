"""training.data: the three layouts, subject ids, pixel-hash dedup, subject-wise splits and the leak check.

Fixtures are built in tmp from the eight real cells in tests/data/cells (no ../shared needed)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")

from engine.preprocess import Preprocessing, preprocess_file
from training.data import (
    DataError,
    LeakError,
    build_manifest,
    build_pixel_cache,
    cell_extent_fraction,
    check_no_leak,
    discover,
    parse_subject,
    subject_folds,
    subject_halves,
)

CELLS = Path(__file__).resolve().parents[1] / "data" / "cells"


def _cells() -> list[Path]:
    cells = sorted(CELLS.glob("*.webp"))
    if len(cells) < 8:
        pytest.skip(f"test cells missing in {CELLS}")
    return cells


def _rgb(p: Path) -> Image.Image:
    with Image.open(p) as im:
        return im.convert("RGB")


def _variant(im: Image.Image, k: int) -> Image.Image:
    """A pixel-distinct copy of a real cell (rotated / flipped), standing in for another cell of the subject."""
    ops = [
        None,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.FLIP_TOP_BOTTOM,
    ]
    return im if ops[k % 6] is None else im.transpose(ops[k % 6])


def make_fold_layout(root: Path, n_subjects: int = 6, per_subject: int = 3, ext: str = "bmp") -> Path:
    """training_data/fold_{0,1}/all|hem/UID_<s>_<img>_<cell>_all.<ext> from the real cells."""
    cells = _cells()
    all_src = [c for c in cells if c.name.endswith("_all.webp")]
    hem_src = [c for c in cells if c.name.endswith("_hem.webp")]
    for s in range(1, n_subjects + 1):
        for cls, srcs in (("all", all_src), ("hem", hem_src)):
            fold = f"fold_{s % 2}"
            d = root / "training_data" / fold / cls
            d.mkdir(parents=True, exist_ok=True)
            for j in range(per_subject):
                im = _variant(_rgb(srcs[s % len(srcs)]), j + (s // len(srcs)) * per_subject)
                sid = f"H{s}" if cls == "hem" else f"{s}"
                im.save(d / f"UID_{sid}_{j + 1}_1_{cls}.{ext}")
    return root


def test_parse_subject_case_insensitive():
    assert parse_subject("UID_11_10_1_all.bmp") == ("11", 1)
    assert parse_subject("uid_h3_5_2_hem.BMP") == ("H3", 0)
    assert parse_subject("UID_H3_5_2_hem.bmp")[0] == parse_subject("UID_h3_7_1_hem.webp")[0]
    assert parse_subject("UID_3_1_1_all.bmp")[0] != parse_subject("UID_H3_1_1_hem.bmp")[0]
    with pytest.raises(DataError, match="no subject id"):
        parse_subject("cell_001.bmp")


def test_discover_fold_layout(tmp_path):
    make_fold_layout(tmp_path, n_subjects=3, per_subject=2)
    items = discover(tmp_path)
    assert len(items) == 12
    assert {it.label for it in items if "/all/" in it.path} == {1}
    assert {it.label for it in items if "/hem/" in it.path} == {0}
    assert {it.subject for it in items} == {"1", "2", "3", "H1", "H2", "H3"}
    # the same result when pointed at training_data/ itself
    assert len(discover(tmp_path / "training_data")) == 12


def test_discover_plain_layout_mixed_formats(tmp_path):
    cells = _cells()
    (tmp_path / "ALL").mkdir()
    (tmp_path / "hem").mkdir()
    _rgb(cells[0]).save(tmp_path / "ALL" / "UID_11_10_1_all.png")
    _rgb(cells[1]).save(tmp_path / "ALL" / "UID_26_30_4_all.tif")
    _rgb(cells[5]).save(tmp_path / "hem" / "UID_h12_29_4_hem.bmp")
    (tmp_path / "hem" / "notes.txt").write_text("not an image")
    items = discover(tmp_path)
    assert [(Path(i.path).suffix, i.label, i.subject) for i in items] == [
        (".png", 1, "11"),
        (".tif", 1, "26"),
        (".bmp", 0, "H12"),
    ]


def test_discover_rejects_cell_in_wrong_class_folder(tmp_path):
    (tmp_path / "all").mkdir()
    _rgb(_cells()[5]).save(tmp_path / "all" / "UID_H12_29_4_hem.bmp")
    with pytest.raises(DataError, match="other class"):
        discover(tmp_path)


def test_discover_prelim_csv_layout(tmp_path):
    cells = _cells()
    img = tmp_path / "C-NMC_test_prelim_phase_data"
    img.mkdir()
    rows = []
    for k, c in enumerate(cells, start=1):
        _rgb(c).save(img / f"{k}.bmp")
        rows.append({"Patient_ID": c.stem, "new_names": f"{k}.bmp", "labels": 1 if c.stem.endswith("_all") else 0})
    with open(tmp_path / "C-NMC_test_prelim_phase_data_labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["Patient_ID", "new_names", "labels"])
        w.writeheader()
        w.writerows(rows)
    items = discover(tmp_path)
    assert len(items) == 8
    by_name = {Path(i.path).name: i for i in items}
    assert by_name["1.bmp"].subject == parse_subject(cells[0].name)[0]
    assert sum(i.label for i in items) == 4


def test_discover_prelim_csv_missing_image_is_an_error(tmp_path):
    (tmp_path / "labels.csv").write_text("Patient_ID,new_names,labels\nUID_1_1_1_all,1.bmp,1\n")
    with pytest.raises(DataError, match="not found"):
        discover(tmp_path)


def test_discover_empty_folder_explains_layouts(tmp_path):
    with pytest.raises(DataError, match="fold_N/all"):
        discover(tmp_path)


def test_dedup_by_decoded_pixels_not_file_bytes(tmp_path):
    cells = _cells()
    (tmp_path / "all").mkdir()
    (tmp_path / "hem").mkdir()
    a = _rgb(cells[0])
    a.save(tmp_path / "all" / "UID_11_10_1_all.bmp")
    a.save(tmp_path / "all" / "UID_12_10_1_all.png")  # same pixels, other subject and format
    _rgb(cells[1]).save(tmp_path / "all" / "UID_26_30_4_all.bmp")
    h = _rgb(cells[5])
    h.save(tmp_path / "hem" / "UID_H12_29_4_hem.bmp")
    h.save(tmp_path / "all" / "UID_40_1_1_all.bmp")  # the same cell under both labels
    m = build_manifest(discover(tmp_path), progress=False)
    kept = sorted(Path(p).name for p in m.paths)
    assert kept == ["UID_11_10_1_all.bmp", "UID_26_30_4_all.bmp"]
    reasons = {Path(d["path"]).name: d["reason"] for d in m.dropped}
    assert "pixel-identical" in reasons["UID_12_10_1_all.png"]
    assert "both labels" in reasons["UID_H12_29_4_hem.bmp"] and "both labels" in reasons["UID_40_1_1_all.bmp"]
    assert len(set(m.hashes)) == len(m)


def test_subject_folds_are_leak_free_and_reproducible(tmp_path):
    make_fold_layout(tmp_path, n_subjects=6, per_subject=3)
    m = build_manifest(discover(tmp_path), progress=False)
    folds = subject_folds(m, n_splits=3, seed=1)
    again = subject_folds(m, n_splits=3, seed=1)
    seen = np.zeros(len(m), int)
    for (tr, va), (_tr2, va2) in zip(folds, again):
        assert np.array_equal(va, va2)
        subs_tr = {m.subjects[i] for i in tr}
        subs_va = {m.subjects[i] for i in va}
        assert not subs_tr & subs_va
        assert {m.labels[i] for i in va} == {0, 1}  # stratified: both classes in every validation fold
        seen[va] += 1
    assert (seen == 1).all()


def test_leak_check_fails_loudly(tmp_path):
    make_fold_layout(tmp_path, n_subjects=4, per_subject=2)
    m = build_manifest(discover(tmp_path), progress=False)
    s = np.asarray(m.subjects)
    tr = np.flatnonzero(np.isin(s, ["1", "2", "H1", "H2"]))
    va = np.flatnonzero(np.isin(s, ["3", "4", "H3", "H4"]))
    check_no_leak(m, tr, va)
    moved = np.flatnonzero(s == "3")[0]  # one of subject 3's two cells moves to the training side
    with pytest.raises(LeakError, match=r"subject\(s\) \['3'\]"):
        check_no_leak(m, np.append(tr, moved), va[va != moved])
    m.hashes[va[0]] = m.hashes[tr[0]]  # a pixel-identical cell under another subject
    with pytest.raises(LeakError, match="pixel-identical"):
        check_no_leak(m, tr, va)


def test_too_few_subjects_for_folds(tmp_path):
    make_fold_layout(tmp_path, n_subjects=2, per_subject=2)
    m = build_manifest(discover(tmp_path), progress=False)
    with pytest.raises(DataError, match="subjects per class"):
        subject_folds(m, n_splits=5)


def test_subject_halves_are_subject_disjoint():
    subjects = ["1", "1", "2", "3", "H1", "H1", "H2"]
    h = subject_halves(subjects, seed=0)
    for s in set(subjects):
        assert len({h[i] for i in range(len(subjects)) if subjects[i] == s}) == 1
    assert set(h.tolist()) == {0, 1}


def test_pixel_cache_is_exactly_preprocess_file(tmp_path):
    make_fold_layout(tmp_path / "d", n_subjects=1, per_subject=2)
    m = build_manifest(discover(tmp_path / "d"), progress=False)
    spec = Preprocessing(40, 40, 0.85, "bilinear")
    px = build_pixel_cache(m, spec, tmp_path / "cache", progress=False)
    assert px.dtype == np.uint8 and px.shape == (len(m), 40, 40, 3)
    for i, p in enumerate(m.paths):
        assert np.array_equal(px[i].astype(np.float32), preprocess_file(p, spec))
    again = build_pixel_cache(m, spec, tmp_path / "cache", progress=False)  # reused, not rebuilt
    assert np.array_equal(np.asarray(again), np.asarray(px))


def test_pixel_cache_is_written_atomically(tmp_path, monkeypatch):
    """Issue 28 item 7: a run stopped while the cache was written left a half-filled .npy under its real name."""
    from training import data as data_mod

    make_fold_layout(tmp_path / "d", n_subjects=1, per_subject=2)
    m = build_manifest(discover(tmp_path / "d"), progress=False)
    spec = Preprocessing(40, 40, 0.85, "bilinear")
    real = data_mod._prep_one
    calls = []

    def stops_on_the_third(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(data_mod, "_prep_one", stops_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        build_pixel_cache(m, spec, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []  # neither the cache nor its temporary file
    monkeypatch.setattr(data_mod, "_prep_one", real)
    px = build_pixel_cache(m, spec, tmp_path / "cache", progress=False)
    assert np.array_equal(px[-1].astype(np.float32), preprocess_file(m.paths[-1], spec))
    assert sorted(f.suffix for f in (tmp_path / "cache").iterdir()) == [".done", ".npy"]


def test_cell_extent_fraction_of_real_cells(tmp_path):
    make_fold_layout(tmp_path, n_subjects=1, per_subject=1)
    m = build_manifest(discover(tmp_path), progress=False)
    f = cell_extent_fraction(m)
    assert ((f > 0.2) & (f <= 1.0)).all()  # centred cells on a black 450x450 background
