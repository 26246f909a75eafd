"""The cell augmentation layer (seeded per call; the 2.0 and 3.0 recipes') and the 2.0 frozen VGG19 recipe's model
and feature cache key.  Skipped without TensorFlow."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.layers import NO_AUGMENTATION, RECIPE_2_AUGMENTATION, CellAugment, CellAugmentation
from training.models import keras, tf


@pytest.fixture(autouse=True)
def _fresh_keras_names():
    """Layer names are global counters: leave them as a fresh process has them for the other test modules."""
    yield
    keras.backend.clear_session()


CELLS = sorted((Path(__file__).resolve().parents[1] / "data" / "cells").glob("*.webp"))


def augment(x, aug: CellAugmentation, seed: int) -> np.ndarray:
    return np.asarray(CellAugment(aug).augment(tf.constant(x), seed=seed))


def _disc(n=4, size=48):
    x = np.zeros((n, size, size, 3), np.float32)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    x[:, inside] = (150.0, 80.0, 170.0)
    return x


def test_augmentation_keeps_the_background_black_and_values_in_range():
    x = _disc()
    y = augment(x, RECIPE_2_AUGMENTATION, 1)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert (y[:, :3, :3] == 0).all() and (y[:, -3:, -3:] == 0).all()
    assert (y.max(axis=3) > 10).mean() > 0.05  # the cell is still there


def test_augmentation_is_new_per_seed_and_reproducible_per_seed():
    x = _disc()
    a = augment(x, RECIPE_2_AUGMENTATION, 1)
    b = augment(x, RECIPE_2_AUGMENTATION, 1)
    c = augment(x, RECIPE_2_AUGMENTATION, 2)
    np.testing.assert_array_equal(a, b)  # a resumed run replays the same views
    assert np.abs(a - c).mean() > 1.0
    assert np.abs(a[0] - a[1]).mean() > 0.1  # each cell of a batch gets its own parameters


def test_no_augmentation_is_the_identity():
    x = _disc()
    y = augment(x, NO_AUGMENTATION, 1)
    np.testing.assert_allclose(y, x, atol=1e-3)


def test_pure_rotation_preserves_the_cell_area():
    x = _disc(1, 64)
    y = augment(x, replace(NO_AUGMENTATION, rotation=True), 3)
    # bilinear resampling blurs the edge by a pixel; the total intensity of the cell is what a rotation keeps
    assert abs(y.sum() - x.sum()) / x.sum() < 0.02


def test_colour_jitter_changes_colour_but_not_the_shape():
    x = _disc()
    aug = replace(NO_AUGMENTATION, brightness=0.10, contrast=0.15, saturation=0.15, hue=20.0)
    y = augment(x, aug, 5)
    np.testing.assert_array_equal(y.max(3) > 10, x.max(3) > 10)
    assert np.abs(y - x)[x.max(3) > 10].mean() > 1.0


def test_frozen_vgg_model_is_the_pooled_features_times_the_head():
    from training.frozen_vgg import shipped_model, vgg_trunk

    trunk = vgg_trunk(32, None, ("block3_conv4",))
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=256), 0.3
    model = shipped_model(32, None, "block3_conv4", w, b)
    model.get_layer("vgg19_pooled").set_weights(trunk.get_weights())
    x = rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    f = trunk(x)
    f = (f[0] if isinstance(f, (list, tuple)) else f).numpy()
    np.testing.assert_allclose(model(x).numpy()[:, 0], f @ w + b, rtol=1e-4, atol=1e-4)
    assert len(model.layers[-1].get_weights()[0]) == 256  # a small head, no fully connected block


def test_frozen_feature_cache_key_follows_pixels_weights_layers_and_augmentation(tmp_path):
    from training.frozen_vgg import FrozenRecipe, _cache_key

    a = np.lib.format.open_memmap(tmp_path / "pixels_160x160_c0p85_x.npy", mode="w+", dtype=np.uint8, shape=(1, 2))
    b = np.lib.format.open_memmap(tmp_path / "pixels_160x160_c0p8_x.npy", mode="w+", dtype=np.uint8, shape=(1, 2))
    r = FrozenRecipe()
    key = _cache_key(a, r, "w.h5")
    assert key == _cache_key(a, FrozenRecipe(), "w.h5")
    assert key != _cache_key(b, r, "w.h5")  # other crop (or data digest): other pixels
    assert key != _cache_key(a, r, "other.h5")
    assert key != _cache_key(a, FrozenRecipe(layers=("block3_conv4",)), "w.h5")
    assert key != _cache_key(a, FrozenRecipe(augmentation=NO_AUGMENTATION), "w.h5")
