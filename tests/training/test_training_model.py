"""Training models: normalisation layer, weight sharing of the fine-tuned top, one training step, ONNX export
parity on real cells, and a card the engine accepts.  Skipped without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

from engine.card import load_card, verify_onnx_file
from engine.preprocess import Preprocessing, preprocess_file
from training.export import export_onnx, parity, write_card
from training.inception import InceptionTrainer, Recipe
from training.models import Normalize, keras, tf, vgg19_model
from training.train_vgg import augment

CELLS = sorted((Path(__file__).resolve().parents[1] / "data" / "cells").glob("*.webp"))


def test_normalize_layer():
    x = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    np.testing.assert_allclose(Normalize("inception")(x).numpy(), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)
    # VGG: RGB -> BGR, minus the ImageNet BGR means
    np.testing.assert_allclose(
        Normalize("vgg")(x).numpy(), [[[[255 - 103.939, 127.5 - 116.779, 0 - 123.68]]]], atol=1e-4
    )


def test_augment_keeps_background_black_and_range():
    rng = np.random.default_rng(0)
    x = np.zeros((4, 16, 16, 3), np.uint8)
    x[:, 4:12, 4:12] = 200
    y = augment(x, rng, 0.1)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert (y[:, 0, 0] == 0).all()


def test_finetuned_top_shares_weights_with_exported_model():
    r = Recipe(size=75, cut="mixed9", views=(0,), epochs=1, batch=4, lr=1e-3)
    t = InceptionTrainer(r, None, log=lambda s: None)
    x = np.random.default_rng(0).uniform(0, 255, (8, 75, 75, 3)).astype(np.float32)
    cut = keras.Model(t.base.input, t.base.get_layer("mixed9").output)
    feats = {0: cut(x / 127.5 - 1.0, training=False).numpy()}
    before = t.base.get_layer("conv2d_93").get_weights()[0].copy()  # a conv inside mixed10
    frozen_before = t.base.get_layer("conv2d").get_weights()[0].copy()  # the stem
    y = np.array([0, 1] * 4)
    t.finetune(feats, y, np.arange(8), None, epochs=1)
    assert not np.allclose(before, t.base.get_layer("conv2d_93").get_weights()[0])
    assert np.array_equal(frozen_before, t.base.get_layer("conv2d").get_weights()[0])
    full = t.export_model()
    z_full = full(x, training=False).numpy()[:, 0]
    z_top = t.logits(feats[0])
    np.testing.assert_allclose(z_full, z_top, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(len(CELLS) < 8, reason="tests/data/cells missing")
def test_tiny_vgg19_one_step_export_parity_and_card(tmp_path):
    keras.utils.set_random_seed(0)
    spec = Preprocessing(32, 32, 0.85, "bilinear")
    x = np.stack([preprocess_file(c, spec) for c in CELLS])
    y = np.array([1.0 if c.stem.endswith("_all") else 0.0 for c in CELLS], np.float32)
    model = vgg19_model(32, None)
    opt = keras.optimizers.Adam(1e-4)
    w0 = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        z = model(augment(x.astype(np.uint8), np.random.default_rng(0), 0.1), training=True)[:, 0]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    assert np.isfinite(float(loss))
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(w0, model.trainable_variables))

    onnx_path = export_onnx(model, tmp_path / "tiny_vgg19.onnx")
    import onnx

    proto = onnx.load(str(onnx_path))
    # the second output is the class-activation map (training/cam.py), written by every export
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["logit", "cam"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 18
    par = parity(model, onnx_path, x, temperature=1.0)
    assert par["pass"] and par["max_abs_p_diff"] < 1e-4
    import onnxruntime as ort

    z_onnx, cam = ort.InferenceSession(str(onnx_path)).run(["logit", "cam"], {"image": x.astype(np.float32)})
    assert cam.ndim == 3 and cam.shape[0] == len(x)  # exact CAM: its spatial mean is the logit
    np.testing.assert_allclose(cam.mean(axis=(1, 2)), z_onnx[:, 0], rtol=1e-4, atol=1e-4)

    card = write_card(
        tmp_path,
        "tiny_vgg19",
        "Tiny VGG19",
        "VGG19",
        onnx_path,
        spec,
        0.5,
        1.3,
        0.1,
        {"data": "none (unit test)", "weighted_f1": 0.0},
        {"epochs": 1},
        "unit test",
    )
    c = load_card(card)
    verify_onnx_file(c)
    assert c.input_size == (32, 32) and c.preprocessing == spec and c.temperature == pytest.approx(1.3)

    # float16 weight storage: half the file, same float32 input/output, P(ALL) barely moves.
    from training.export import storage_parity, store_weights_fp16

    half = store_weights_fp16(onnx_path, tmp_path / "tiny_vgg19.fp16.onnx")
    stored = onnx.load(str(half))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in stored.graph.initializer)
    assert stored.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.stat().st_size < 0.6 * onnx_path.stat().st_size
    st = storage_parity(onnx_path, half, x, temperature=1.0, threshold=0.5)
    assert st["max_abs_p_diff_vs_fp32"] < 5e-3 and st["decision_agreement"] == 1.0


def test_vgg_checkpoint_restores_optimizer_state(tmp_path):
    """--resume must bring back Adam's moments and step count, not only the weights."""
    from training.train_vgg import training_checkpoint

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    y = np.array([1, 0, 1, 0], np.float32)

    def fresh():
        model = vgg19_model(32, None)
        opt = keras.optimizers.Adam(1e-4)
        return model, opt, training_checkpoint(model, opt)

    model, opt, ckpt = fresh()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=model(x, training=True)[:, 0]))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    ckpt.epoch.assign(1)
    saved = ckpt.save(str(tmp_path / "ckpt"))

    model2, opt2, ckpt2 = fresh()
    ckpt2.restore(saved).assert_existing_objects_matched()
    assert int(ckpt2.epoch) == 1 and int(opt2.iterations) == 1
    for a, b in zip(opt.variables, opt2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(np.abs(v.numpy()).sum() > 0 for v in opt2.variables[2:])  # the moments are non-zero


def test_test_time_views_are_cached_views_starting_with_identity():
    assert Recipe(views=(0, 5, 2)).test_views == (0, 5, 2)
    assert Recipe(views=tuple(range(8)), tta_views=(0, 2)).test_views == (0, 2)
    for bad in ((5, 0), (0, 7)):
        with pytest.raises(ValueError):
            Recipe(views=(0, 5, 2), tta_views=bad).test_views  # noqa: B018  (the property raises: that is the test)


def test_cli_views_parsing():
    from training.cli import _views

    assert _views("0,5,2") == (0, 5, 2)
    for bad in ("5,0", "0,0", "0,9", "a", ""):
        with pytest.raises(SystemExit):
            _views(bad)


def test_card_records_test_time_views(tmp_path):
    spec = Preprocessing(32, 32, 0.85, "bilinear")
    model = vgg19_model(32, None)
    onnx_path = export_onnx(model, tmp_path / "m.onnx")
    card = write_card(
        tmp_path,
        "m",
        "M",
        "VGG19",
        onnx_path,
        spec,
        0.5,
        1.0,
        0.1,
        {"data": "unit test"},
        {},
        "",
        tta_views=(0, 5, 2),
        recommended=True,
    )
    c = load_card(card)
    assert c.tta_views == (0, 5, 2) and c.recommended


@pytest.mark.parametrize("layers", [["mixed0"], ["mixed0", "mixed1"]])
def test_feature_cache_rows_are_their_own_cells(tmp_path, layers):
    """Every cached row is the activation of ITS cell and view (one layer or several; batches of several cells)."""
    from training import features
    from training.models import dihedral, inception_base

    px = np.random.default_rng(0).integers(0, 256, (5, 75, 75, 3)).astype(np.uint8)
    keras.utils.set_random_seed(0)
    out = features.extract(px, 75, None, layers, [0, 1], tmp_path, "t", batch=2, log=lambda s: None)
    keras.utils.set_random_seed(0)  # the same random weights as the extractor's network
    base = inception_base(75, None)
    for v in (0, 1):
        for ln in layers:
            sub = keras.Model(base.input, base.get_layer(ln).output)
            for i in range(len(px)):
                ref = sub(dihedral(px[i : i + 1].astype(np.float32), v) / 127.5 - 1.0, training=False).numpy()[0]
                np.testing.assert_allclose(np.asarray(out[(ln, v)][i], np.float32), ref, rtol=1e-2, atol=1e-2)


def test_ensemble_card_is_written_and_loads(tmp_path):
    from tinymodels import make_tiny_model

    from engine.registry import Registry
    from training.export import write_ensemble_card

    make_tiny_model(tmp_path, "a")
    make_tiny_model(tmp_path, "b", seed=1)
    card = write_ensemble_card(
        tmp_path, ["a", "b"], 0.45, 0.2, {"data": "unit test", "weighted_f1": 0.5}, {}, "", version="1.1.0"
    )
    c = load_card(card)
    assert c.is_ensemble and c.members == ("a", "b") and c.version == "1.1.0" and c.threshold == 0.45
    assert Registry([tmp_path]).load("ensemble", device="cpu").member_names == ("a", "b")
