"""The 3.0 end-to-end recipe (training/e2e.py): backend-agnostic augmentation, a tiny real run on real cells with
held-out donors, and resuming from the portable (weights-only float16) checkpoint.  Skipped without Keras."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from training.layers import NO_AUGMENTATION, CellAugment, Normalize
from training.metrics import area_auroc, donor_summary

CELLS = sorted((Path(__file__).resolve().parents[1] / "data" / "cells").glob("*.webp"))


@pytest.fixture(autouse=True)
def _fresh_keras_names():
    yield
    keras.backend.clear_session()


def _discs(radii, size=64):
    x = np.zeros((len(radii), size, size, 3), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for i, r in enumerate(radii):
        x[i, (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < r * r] = (150.0, 80.0, 170.0)
    return x


def test_cell_augment_is_identity_at_inference_and_keeps_the_background_black():
    x = _discs([14, 18, 20, 22])
    layer = CellAugment(seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert (y[:, :2, :2] == 0).all() and (y[:, -2:, -2:] == 0).all()
    assert (y.max(axis=3) > 10).mean() > 0.02 and np.abs(y - x).mean() > 1.0


def test_no_augmentation_is_the_identity():
    x = _discs([15, 20])
    np.testing.assert_allclose(np.asarray(CellAugment(NO_AUGMENTATION).augment(x)), x, atol=1e-3)


def test_size_equalisation_removes_size_as_a_cue():
    """Small 'HEM' discs and large 'ALL' discs: area separates them perfectly before augmentation, barely after."""
    rng = np.random.default_rng(0)
    small, large = rng.uniform(10, 13, 64), rng.uniform(16, 20, 64)
    x = _discs(np.concatenate([small, large]))
    y = np.array([0] * 64 + [1] * 64)
    assert area_auroc(x, y) == 1.0
    aug = replace(NO_AUGMENTATION, size_equalise=1.0, target_area=(0.08, 0.25))
    views = np.asarray(CellAugment(aug, seed=3)(x, training=True))
    assert area_auroc(views, y) < 0.7


def test_normalize_is_backend_neutral_and_matches_the_backbones():
    x = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    np.testing.assert_allclose(np.asarray(Normalize("inception")(x)), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(Normalize("vgg")(x)), [[[[255 - 103.939, 127.5 - 116.779, -123.68]]]], atol=1e-4
    )


def test_donor_summary_counts_donors_called_right_at_case_level():
    per = {
        "H1": {"class": "HEM", "accuracy": 0.9},
        "H2": {"class": "HEM", "accuracy": 0.4},
        "7": {"class": "ALL", "accuracy": 0.8},
    }
    d = donor_summary(per)
    assert d["healthy_donors"]["called_right_at_case_level"] == 1 and d["healthy_donors"]["worst_subject"] == "H2"
    assert d["healthy_donors"]["mean_share_called_right"] == pytest.approx(0.65)
    assert d["all_patients"]["n"] == 1


@pytest.mark.skipif(len(CELLS) < 8, reason="tests/data/cells missing")
def test_tiny_e2e_run_reports_donors_and_resumes_from_the_portable_checkpoint(tmp_path):
    from training.data import build_manifest, discover
    from training.e2e import E2ERecipe, run

    for c in CELLS:
        d = tmp_path / "data" / "fold_0" / ("all" if c.stem.endswith("_all") else "hem")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy2(c, d / c.name)
    m = build_manifest(discover(tmp_path / "data"), progress=False)
    r = E2ERecipe(
        size=75,
        window_px=288,
        epochs=1,
        batch=2,
        holdout=("11", "35", "H11", "H12"),
        tta_views=(0, 5),
        checkpoint_s=0.0,
    )
    portable = tmp_path / "portable.weights.h5"
    logs: list[str] = []
    metrics = run(m, r, None, tmp_path / "run", tmp_path / "cache", False, logs.append, 1, portable)
    assert metrics["val_subjects"] == ["11", "35", "H11", "H12"]
    assert not set(metrics["val_subjects"]) & set(metrics["train_subjects"])
    assert set(metrics["donors_cross_fitted"]) == {"healthy_donors", "all_patients"}
    assert metrics["preprocessing"]["crop_mode"] == "centroid" and metrics["preprocessing"]["window_px"] == 288
    assert "augmented" in metrics["cell_area_auroc_training_views"]
    assert "healthy_donors" in metrics["cell_area_baseline"]["donors"]  # the size-only bar, on the same donors
    assert metrics["provenance"]["recipe"] == "e2e inceptionv3" and "commit" in metrics["provenance"]
    st = json.loads(portable.with_suffix(".json").read_text())
    assert st["epochs_done"] == 1 and st["recipe"] == r.to_dict()
    import h5py

    with h5py.File(portable) as f:
        dtypes = set()
        f.visititems(lambda n, o: dtypes.add(o.dtype) if isinstance(o, h5py.Dataset) else None)
    assert np.dtype("float32") not in dtypes  # weights only, float16

    # a new machine: no run folder, only the committed portable checkpoint -> nothing retrained, same predictions
    logs2: list[str] = []
    again = run(m, r, None, tmp_path / "elsewhere", tmp_path / "cache", True, logs2.append, 1, portable)
    assert any("portable checkpoint" in s for s in logs2) and not any("step" in s and "loss" in s for s in logs2)
    a = np.load(tmp_path / "run" / "oof.npz")["logits"]
    b = np.load(tmp_path / "elsewhere" / "oof.npz")["logits"]
    np.testing.assert_allclose(a, b, atol=0.05)  # float16 weights
    assert again["val_subjects"] == metrics["val_subjects"]
