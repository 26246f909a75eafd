"""engine.cam: the class-activation overlay of one cell, from the models' second ONNX output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("onnx")

from conftest import CELLS_SRC
from tinymodels import make_tiny_ensemble, make_tiny_model, reference_logits

from engine.cam import CamUnavailable, cam_available, cell_cam, member_cam
from engine.preprocess import open_rgb, preprocess_image
from engine.registry import Registry
from training.cam import add_cam_output, update_card_sha256

CELL = sorted(CELLS_SRC.glob("*.webp"))[0]


def _with_cam(card_path, views=None):
    add_cam_output(card_path.with_suffix(".onnx"))
    if views:
        data = json.loads(card_path.read_text())
        data["test_time_augmentation"] = {"views": list(views), "combine": "mean_logit"}
        card_path.write_text(json.dumps(data, indent=2) + "\n")
    update_card_sha256(card_path)
    return card_path


def test_the_maps_mean_is_the_decision_and_views_are_turned_back(tmp_path):
    """The tiny model's CAM is per pixel ((x / 255) . w + b), so every dihedral view turned back gives the
    identity's map: averaging three views must reproduce it exactly (a wrong inverse would not)."""
    _with_cam(make_tiny_model(tmp_path, name="one", size=32, temperature=2.0, threshold=0.3))
    _with_cam(make_tiny_model(tmp_path, name="tta", size=32, temperature=2.0, threshold=0.3), views=(0, 5, 2, 7))
    reg = Registry([tmp_path])
    one, tta = reg.load("one", device="cpu"), reg.load("tta", device="cpu")
    rgb = open_rgb(CELL)
    m1, box1 = member_cam(one.members[0], rgb)
    m4, box4 = member_cam(tta.members[0], rgb)
    np.testing.assert_allclose(m4, m1, rtol=1e-5, atol=1e-5)
    assert box1 == box4 == (0.0, 0.0, 450.0, 450.0)  # crop 1.0 of a 450 x 450 cell
    x = preprocess_image(rgb, one.members[0].spec)[None]
    z = float(reference_logits(x)[0, 0])
    assert m1.mean() == pytest.approx(z / 2.0, abs=1e-4)  # the map's mean is the calibrated logit
    r = cell_cam(one, CELL)
    # decision units: mean over the window = calibrated logit - logit(threshold); its sign is the decision
    expect = z / 2.0 - math.log(0.3 / 0.7)
    assert np.nanmean(r.values) == pytest.approx(expect, abs=0.02 * abs(expect) + 1e-3)
    p = one.predict_batch(x).p_all[0]
    assert (np.nanmean(r.values) >= 0) == (p >= 0.3)
    assert r.image_size == (450, 450) and r.values.shape == (128, 128) and r.resolution == (32, 32)
    finite = np.abs(r.values[np.isfinite(r.values)])
    assert 0 < r.scale <= finite.max() and (finite > r.scale).mean() == pytest.approx(0.02, abs=0.01)


def test_the_map_covers_only_the_models_window(tmp_path):
    _with_cam(make_tiny_model(tmp_path, name="crop", size=16, crop_fraction=0.5))
    r = cell_cam(Registry([tmp_path]).load("crop", device="cpu"), CELL)
    v = r.values
    assert np.isnan(v[:, :30]).all() and np.isnan(v[:30]).all() and np.isnan(v[-30:]).all()
    assert np.isfinite(v[34:94, 34:94]).all()  # the centre half of the frame


def test_ensemble_map_and_a_model_without_the_output(tmp_path):
    _with_cam(make_tiny_model(tmp_path, name="a", size=32))
    make_tiny_model(tmp_path, name="b", size=48, seed=3, crop_fraction=0.8)  # exported before CAM existed
    make_tiny_ensemble(tmp_path, ["a", "b"], name="ab")
    reg = Registry([tmp_path])
    assert cam_available(reg.load("a", device="cpu")) == ""
    ens = reg.load("ab", device="cpu")
    assert "b has no class-activation output" in cam_available(ens)
    with pytest.raises(CamUnavailable):
        cell_cam(ens, CELL)
    _with_cam(tmp_path / "b.json")
    r = cell_cam(Registry([tmp_path]).load("ab", device="cpu"), CELL)
    assert np.isfinite(r.values).all()  # member a's window is the whole frame
    assert r.resolution == (32, 32) and r.model == "ab"
