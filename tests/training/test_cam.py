"""training.cam: the class-activation map as a second ONNX output, added by graph surgery."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinymodels import make_tiny_model, reference_logits

from engine.card import load_card, verify_onnx_file
from training.cam import (
    CamError,
    add_cam_graph,
    add_cam_output,
    check_logits_unchanged,
    find_head,
    update_card_sha256,
)


def _nchw_model(fp16_weight: bool = True, hidden: bool = False):
    """Conv -> Relu -> GlobalAveragePool -> Squeeze -> [Dropout] -> MatMul -> Add: the shape tf2onnx gives a
    Keras CNN with a Dense(1) head (weights optionally stored as float16 + Cast, as the shipped models)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    k = rng.normal(0, 0.1, (4, 3, 3, 3)).astype(np.float32)
    w = rng.normal(0, 1, (4, 1)).astype(np.float32)
    inits = [
        numpy_helper.from_array(k, "k"),
        numpy_helper.from_array(np.array([-0.3], np.float32), "b"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "sq_axes"),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "k"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["fmap"]),
        helper.make_node("GlobalAveragePool", ["fmap"], ["gap"]),
        helper.make_node("Squeeze", ["gap", "sq_axes"], ["pooled"]),
        helper.make_node("Dropout", ["pooled"], ["dropped"]),
    ]
    if fp16_weight:
        inits.append(numpy_helper.from_array(w.astype(np.float16), "w16"))
        nodes.append(helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    if hidden:  # Dense(4) + ReLU before the logit: not linear after pooling
        inits.append(numpy_helper.from_array(np.eye(4, dtype=np.float32), "h"))
        nodes += [helper.make_node("MatMul", ["dropped", "h"], ["hid"]), helper.make_node("Relu", ["hid"], ["hr"])]
    nodes += [
        helper.make_node("MatMul", ["hr" if hidden else "dropped", "w"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nchw",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 12, 12, 3])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, k, w


def _run(model, x, outputs):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        outputs, {"image": x}
    )


def test_nchw_head_cam_is_the_head_at_every_position_and_averages_to_the_logit():
    model, k, w = _nchw_model()
    x = np.random.default_rng(1).uniform(0, 255, (3, 12, 12, 3)).astype(np.float32)
    (before,) = _run(model, x, ["logit"])
    head = add_cam_graph(model)
    assert head["layout"] == "NCHW" and head["channels"] == 4
    assert [o.name for o in model.graph.output] == ["logit", "cam"]
    onnx.checker.check_model(model)
    (after,) = _run(model, x, ["logit"])
    logit, cam = _run(model, x, ["logit", "cam"])
    assert np.array_equal(before, after) and np.array_equal(before, logit)  # adding an output changes nothing
    assert cam.shape == (3, 12, 12)
    np.testing.assert_allclose(cam.mean(axis=(1, 2)), logit[:, 0], atol=1e-5)
    # position by position: relu(conv) . w + b, in numpy
    fmap = _run(_with_output(model, "fmap"), x, ["fmap"])[0]  # (N, C, H, W)
    expect = np.einsum("nchw,c->nhw", fmap, w.astype(np.float16).astype(np.float32)[:, 0]) - 0.3
    np.testing.assert_allclose(cam, expect, rtol=1e-5, atol=1e-5)


def _with_output(model, name):
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return m


def test_a_head_that_is_not_linear_after_pooling_is_refused_with_the_reason():
    model, _, _ = _nchw_model(hidden=True)
    with pytest.raises(CamError, match="not a Dense layer|not linear"):
        find_head(model)
    n_out = len(model.graph.output)
    with pytest.raises(CamError):
        add_cam_graph(model)
    assert len(model.graph.output) == n_out  # nothing half-added


def test_add_cam_output_on_a_card_model_keeps_logits_and_the_card_valid(tmp_path):
    """The NHWC ReduceMean head of the tiny test models; the file is rewritten once, the card's sha256 follows."""
    card_path = make_tiny_model(tmp_path / "m", name="tiny", size=16)
    onnx_path = card_path.with_suffix(".onnx")
    before = tmp_path / "before.onnx"
    before.write_bytes(onnx_path.read_bytes())
    head = add_cam_output(onnx_path)
    assert head["layout"] == "NHWC"
    data = onnx_path.read_bytes()
    add_cam_output(onnx_path)  # idempotent
    assert onnx_path.read_bytes() == data
    x = np.random.default_rng(2).uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    check = check_logits_unchanged(before, onnx_path, x)
    assert check["logits_bit_identical"] and check["max_abs_cam_mean_minus_logit"] < 1e-4
    assert check["cam_shape"] == [16, 16]
    np.testing.assert_allclose(_run(onnx.load(str(onnx_path)), x, ["logit"])[0], reference_logits(x), rtol=1e-5)

    old = json.loads(card_path.read_text())["sha256"]
    with pytest.raises(Exception, match="sha256"):
        verify_onnx_file(load_card(card_path))  # the card no longer matches the changed file ...
    new = update_card_sha256(card_path)
    assert new != old and json.loads(card_path.read_text())["sha256"] == new
    verify_onnx_file(load_card(card_path))  # ... until its digest is updated; nothing else in the card moved
    assert (
        card_path.read_text().replace(new, old)
        == json.dumps({**json.loads(card_path.read_text()), "sha256": old}, indent=2) + "\n"
    )
