"""Training models: normalisation layer, one training step, ONNX export parity on real cells, and a card the engine
accepts.  Skipped without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

from engine.card import load_card, verify_onnx_file
from engine.preprocess import Preprocessing, preprocess_file
from training.e2e import E2ERecipe, build_model
from training.export import export_onnx, parity, write_card
from training.models import Normalize, keras, tf


def vgg19_model(size: int):
    """A whole VGG19 with its head (the e2e recipe's network), random weights."""
    return build_model(E2ERecipe(arch="vgg19", size=size), None)


CELLS = sorted((Path(__file__).resolve().parents[1] / "data" / "cells").glob("*.webp"))


def test_normalize_layer():
    x = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    np.testing.assert_allclose(Normalize("inception")(x).numpy(), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6)
    # VGG: RGB -> BGR, minus the ImageNet BGR means
    np.testing.assert_allclose(
        Normalize("vgg")(x).numpy(), [[[[255 - 103.939, 127.5 - 116.779, 0 - 123.68]]]], atol=1e-4
    )


@pytest.mark.skipif(len(CELLS) < 8, reason="tests/data/cells missing")
def test_tiny_vgg19_one_step_export_parity_and_card(tmp_path):
    keras.utils.set_random_seed(0)
    spec = Preprocessing(32, 32, 0.85, "bilinear")
    x = np.stack([preprocess_file(c, spec) for c in CELLS])
    y = np.array([1.0 if c.stem.endswith("_all") else 0.0 for c in CELLS], np.float32)
    model = vgg19_model(32)
    opt = keras.optimizers.Adam(1e-4)
    w0 = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        z = model(x, training=True)[:, 0]
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


def test_cli_views_parsing():
    from training.options import UsageError, views

    assert views("0,5,2") == (0, 5, 2)
    for bad in ("5,0", "0,0", "0,9", "a", ""):
        with pytest.raises(UsageError):
            views(bad)


def test_card_records_test_time_views(tmp_path):
    spec = Preprocessing(32, 32, 0.85, "bilinear")
    model = vgg19_model(32)
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
