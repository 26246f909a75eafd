"""training.quantize / quantize_run: int8 QDQ of a model with two outputs, the gate, and the card it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("sklearn")

import onnx
from PIL import Image
from tinymodels import build_tiny_conv_onnx, make_tiny_model

from engine.card import load_card
from engine.registry import Registry
from training.quantize import (
    GATE_AGREE,
    fold_fp16_weights,
    gate_figures,
    int8_gate,
    quantize_int8,
    resolve_nodes,
    spread_by_subject,
    view_logits,
)
from training.quantize_run import _write, quantize_run


def cells(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """0-255 NHWC cells of varied brightness (what orders the tiny conv model's logits)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, size, size, 3)) * rng.uniform(0.1, 1.0, (n, 1, 1, 1))
    return x.astype(np.float32)


@pytest.fixture
def conv_model(tmp_path):
    card = make_tiny_model(tmp_path / "models", "conv", size=16, conv=True)
    return card, tmp_path / "models" / "conv.onnx"


def labelled(z: np.ndarray, n_subjects: int = 5):
    """Labels by the float32 logit's median (a model right on ~all cells), subjects round robin, and the threshold
    at the median's probability: a realistic spread of calls on both sides."""
    y = (z > np.median(z)).astype(int)
    subjects = np.array([f"S{i % n_subjects}" for i in range(len(z))])
    return y, subjects, float(1 / (1 + np.exp(-np.median(z))))


def test_fold_fp16_weights_makes_them_initializers_of_the_convs():
    proto = build_tiny_conv_onnx(16, fp16_weights=True)
    assert fold_fp16_weights(proto) == 2
    assert not [n for n in proto.graph.node if n.op_type == "Cast"]
    inits = {i.name: i for i in proto.graph.initializer}
    assert inits["w1"].data_type == onnx.TensorProto.FLOAT and "w1__fp16" not in inits
    onnx.checker.check_model(proto)


def test_fold_keeps_the_outputs(tmp_path):
    a = build_tiny_conv_onnx(16)
    b = build_tiny_conv_onnx(16)
    fold_fp16_weights(b)
    onnx.save(a, str(tmp_path / "a.onnx"))
    onnx.save(b, str(tmp_path / "b.onnx"))
    x = cells(8)
    np.testing.assert_array_equal(view_logits(tmp_path / "a.onnx", [x]), view_logits(tmp_path / "b.onnx", [x]))


def test_first_and_head_name_the_first_conv_and_the_logit_s_matmul():
    proto = build_tiny_conv_onnx(16)
    assert resolve_nodes(proto, ["first", "head", "last"]) == ["conv1", "head", "conv2"]
    with pytest.raises(ValueError, match="no node named 'nope'"):
        resolve_nodes(proto, ["nope"])


def test_gate_figures_pass_and_each_way_to_fail():
    rng = np.random.default_rng(1)
    z32 = rng.normal(0, 3, 2000)
    y = (z32 + rng.normal(0, 1.5, 2000) > 0).astype(int)
    subj = np.array([f"D{i % 10}" for i in range(2000)])
    ok = gate_figures(z32, z32 + rng.normal(0, 0.01, 2000), y, subj, 1.0, 0.5)
    assert ok["pass"] and ok["call_agreement"] >= GATE_AGREE and ok["n_donors"] == 10
    assert abs(ok["auroc_diff"]) < 0.005 and set(ok["checks"]) == {"auroc", "every_donor", "agreement"}
    # one donor's cells pushed across the threshold: agreement over all cells still >= 0.99, that donor fails
    z8 = z32.copy()
    d0 = np.flatnonzero((subj == "D0") & (np.abs(z32) < 1.0) & ((z32 > 0) == (y == 1)))[:8]  # right, now wrong
    z8[d0] = -z8[d0]
    bad_donor = gate_figures(z32, z8, y, subj, 1.0, 0.5)
    assert bad_donor["call_agreement"] >= GATE_AGREE and not bad_donor["checks"]["every_donor"]
    assert bad_donor["worst_donor"] == "D0" and not bad_donor["pass"]
    # a shift of every logit: the order (AUROC) is kept, the calls are not
    shifted = gate_figures(z32, z32 + 1.0, y, subj, 1.0, 0.5)
    assert shifted["checks"]["auroc"] and not shifted["checks"]["agreement"] and not shifted["pass"]
    # noise that reorders cells: AUROC moves
    noisy = gate_figures(z32, z32 + rng.normal(0, 2.0, 2000), y, subj, 1.0, 0.5)
    assert not noisy["checks"]["auroc"]


def test_int8_of_a_two_output_model_keeps_its_calls(conv_model, tmp_path):
    _, fp32 = conv_model
    x = cells(300)
    how = quantize_int8(fp32, tmp_path / "q.onnx", x[:64], method="percentile", nodes_to_exclude=["first"])
    assert how["nodes_kept_in_float"] == ["conv1"] and how["fp16_weights_folded"] == 2
    q = onnx.load(str(tmp_path / "q.onnx"))
    assert [o.name for o in q.graph.output] == ["logit", "cam"]
    # per-channel weights: conv2's weight is dequantised with one scale per output channel (8)
    inits = {i.name: i for i in q.graph.initializer}
    dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None]
    assert dq and all(list(inits[n.input[1]].dims) == [8] for n in dq if len(inits[n.input[0]].dims) == 4)
    assert not any(n.op_type == "Conv" and n.name == "conv1" and "DequantizeLinear" in n.input[1] for n in q.graph.node)
    z32 = view_logits(fp32, [x])
    y, subj, th = labelled(z32)
    fig = int8_gate(fp32, tmp_path / "q.onnx", [x[:150], x[150:]], y, subj, 1.0, th, views=(0, 5))
    assert fig["pass"], fig["checks"]
    assert fig["views"] == [0, 5]


def test_calibration_on_the_wrong_cells_fails_the_gate(conv_model, tmp_path):
    _, fp32 = conv_model
    x = cells(300)
    quantize_int8(fp32, tmp_path / "dark.onnx", x[:64] * 0.02, method="minmax")  # near-black calibration cells
    z32 = view_logits(fp32, [x])
    y, subj, th = labelled(z32)
    fig = gate_figures(z32, view_logits(tmp_path / "dark.onnx", [x]), y, subj, 1.0, th)
    assert not fig["pass"] and not fig["checks"]["agreement"]


def test_spread_by_subject_takes_every_donor_evenly():
    subjects = ["a"] * 100 + ["b"] * 10 + ["c"] * 40
    idx = spread_by_subject(subjects, 30)
    got = np.asarray(subjects)[idx]
    assert len(idx) == 30 and {s: int((got == s).sum()) for s in "abc"} == {"a": 10, "b": 10, "c": 10}
    rest = spread_by_subject(subjects, 1000, seed=1, exclude=idx)
    assert len(rest) == 120 and not set(rest) & set(idx)


def _run_folder(tmp_path, n: int = 60) -> tuple:
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    x = cells(n, size=24, seed=3).astype(np.uint8)
    paths = []
    for i, im in enumerate(x):
        p = run / "cells" / f"c{i}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    return run, paths


def test_quantize_run_writes_the_int8_file_and_the_gate_into_the_card(tmp_path):
    out = tmp_path / "models"
    card_path = make_tiny_model(out, "conv", size=16, conv=True, temperature=40.0)
    run, paths = _run_folder(tmp_path)
    card = load_card(card_path)
    from engine.preprocess import preprocess_file

    z = view_logits(card.onnx_file, [np.stack([preprocess_file(p, card.preprocessing) for p in paths])])
    y, subj, th = labelled(z, n_subjects=6)
    raw = json.loads(card_path.read_text())
    raw["threshold"] = float(1 / (1 + np.exp(-np.median(z) / 40.0)))
    card_path.write_text(json.dumps(raw))
    np.savez(run / "oof.npz", paths=np.array(paths), labels=y, subjects=subj, logits=z)
    res = quantize_run(
        run, out, log=lambda m: None, name="conv", n_gate=36, n_calib=24, methods=("minmax", "percentile")
    )
    assert res["pass"] and res["n_cells"] == 36 and res["n_donors"] == 6
    assert [t["calibration_method"] for t in res["tried"]] == ["minmax", "percentile"]
    card = load_card(card_path)
    assert card.int8_passed and card.int8_file == out / "conv.int8.onnx" and card.int8_file.is_file()
    assert card.metrics["int8_quantization"]["call_agreement"] == res["call_agreement"]
    clf = Registry([out]).load("conv", device="cpu", precision="auto")
    assert clf.precision == "int8" and clf.members[0].card.onnx_file.name == "conv.int8.onnx"
    assert not list(run.glob("*.onnx"))  # the candidates are removed
    assert json.loads((run / "quantization.json").read_text())["pass"] is True


def test_a_failed_gate_removes_the_int8_file_and_its_card_entry(tmp_path, conv_model):
    card_path, fp32 = conv_model
    x = cells(200)
    quantize_int8(fp32, tmp_path / "dark.onnx", x[:32] * 0.02, method="minmax")
    z32 = view_logits(fp32, [x])
    y, subj, th = labelled(z32)
    fig = gate_figures(z32, view_logits(tmp_path / "dark.onnx", [x]), y, subj, 1.0, th)
    stale = card_path.parent / "conv.int8.onnx"
    stale.write_bytes(b"an int8 file of an older model")
    raw = json.loads(card_path.read_text())
    raw["int8"] = {"onnx_file": stale.name, "sha256": "0" * 64}
    card_path.write_text(json.dumps(raw))
    _write(card_path, fig, tmp_path / "dark.onnx", stale, lambda m: None)
    card = load_card(card_path)
    assert card.int8_file is None and not stale.exists() and not card.int8_passed
    assert card.metrics["int8_quantization"]["pass"] is False


def test_shift_logit_moves_the_logit_only(conv_model, tmp_path):
    from training.quantize import shift_logit

    _, fp32 = conv_model
    moved = tmp_path / "moved.onnx"
    moved.write_bytes(fp32.read_bytes())
    shift_logit(moved, -1.25)
    x = cells(8)
    np.testing.assert_allclose(view_logits(moved, [x]), view_logits(fp32, [x]) - 1.25, atol=1e-4)
    import onnxruntime as ort

    cam = [ort.InferenceSession(str(p)).run(["cam"], {"image": x})[0] for p in (fp32, moved)]
    np.testing.assert_array_equal(cam[0], cam[1])
    assert [o.name for o in onnx.load(str(moved)).graph.output] == ["logit", "cam"]
