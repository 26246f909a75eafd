"""Classifier: exact numbers against the tiny models' numpy reference, calibration, ensembles, providers."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
from conftest import real_cell_sources
from tinymodels import make_tiny_model, reference_p_all

from engine import model as model_mod
from engine.card import ModelError
from engine.model import CPU, CUDA, calibrate, require_cuda
from engine.preprocess import Preprocessing, preprocess_file
from engine.registry import Registry


def _batch(spec: Preprocessing) -> np.ndarray:
    return np.stack([preprocess_file(p, spec) for p in real_cell_sources()])


def test_single_model_matches_numpy_reference(tiny_models_dir):
    clf = Registry([tiny_models_dir]).load("tiny_a", device="cpu")
    assert clf.active_provider == CPU and clf.device_label == "CPU" and clf.warnings == []
    (spec,) = clf.preprocessings
    x = _batch(spec)
    pred = clf.predict({spec: x})
    np.testing.assert_allclose(pred.p_all, reference_p_all(x, seed=0), rtol=1e-5, atol=1e-6)
    assert pred.member_p == {} and not pred.members_disagree.any()
    # real cells: the toy model does see a difference between blasts and normal cells
    p = dict(zip([s.stem for s in real_cell_sources()], pred.p_all))
    assert np.mean([v for k, v in p.items() if k.endswith("_all")]) > np.mean(
        [v for k, v in p.items() if k.endswith("_hem")]
    )


def test_temperature_calibration(tmp_path):
    make_tiny_model(tmp_path, "t1", temperature=1.0)
    make_tiny_model(tmp_path, "t3", temperature=3.0)
    reg = Registry([tmp_path])
    spec = reg.get("t1").preprocessing
    x = _batch(spec)
    p1 = reg.load("t1").predict_batch(x).p_all
    p3 = reg.load("t3").predict_batch(x).p_all
    np.testing.assert_allclose(p3, reference_p_all(x, 0, temperature=3.0), rtol=1e-5)
    # same ranking, pulled towards 0.5
    assert (np.argsort(p1) == np.argsort(p3)).all()
    assert (np.abs(p3 - 0.5) < np.abs(p1 - 0.5)).all()


def test_calibrate_logit_and_probability():
    z = np.array([-800.0, -2.0, 0.0, 2.0, 800.0])
    p = calibrate(z, "logit", 1.0)
    assert np.isfinite(p).all() and p[2] == 0.5 and p[0] < 1e-300 + 1e-12 and p[-1] == 1.0
    np.testing.assert_allclose(calibrate(np.array([0.2, 0.5, 0.9]), "probability", 1.0), [0.2, 0.5, 0.9], rtol=1e-9)
    q = calibrate(np.array([0.9]), "probability", 2.0)[0]
    np.testing.assert_allclose(q, 1 / (1 + np.exp(-np.log(9) / 2)), rtol=1e-9)


def test_ensemble_is_mean_of_members_and_flags_disagreement(tiny_models_dir):
    reg = Registry([tiny_models_dir])
    ens = reg.load("tiny_ensemble")
    a, b = reg.get("tiny_a").preprocessing, reg.get("tiny_b").preprocessing
    assert ens.preprocessings == (a, b) and a != b
    xa, xb = _batch(a), _batch(b)
    pred = ens.predict({a: xa, b: xb})
    pa, pb = reference_p_all(xa, 0), reference_p_all(xb, 3)
    np.testing.assert_allclose(pred.member_p["tiny_a"], pa, rtol=1e-5)
    np.testing.assert_allclose(pred.member_p["tiny_b"], pb, rtol=1e-5)
    np.testing.assert_allclose(pred.p_all, (pa + pb) / 2, rtol=1e-5)
    assert (pred.members_disagree == ((pa >= 0.5) != (pb >= 0.5))).all()
    assert pred.members_disagree.any() and not pred.members_disagree.all()  # the fixture exercises both
    with pytest.raises(ValueError):
        ens.predict_batch(xa)


def test_cuda_requested_without_cuda_support_warns_and_runs_on_cpu(tiny_models_dir, monkeypatch, caplog):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    clf = Registry([tiny_models_dir]).load("tiny_a", device="cuda")
    assert clf.active_provider == CPU
    assert len(clf.warnings) == 1 and "CUDA was requested" in clf.warnings[0]
    assert "no CUDA provider (it offers CPUExecutionProvider" in clf.device_fallback
    assert any("CUDA was requested" in r.message for r in caplog.records)
    with pytest.raises(ModelError, match="--device cuda: tiny_a cannot run on CUDA: CUDA was requested"):
        require_cuda(clf)  # the CLI's rule for an explicit --device cuda (exit 3)
    clf_auto = Registry([tiny_models_dir]).load("tiny_a", device="auto")
    assert clf_auto.warnings == [] and clf_auto.device_fallback == ""  # auto on a CPU-only install: no fallback


def test_silent_cuda_fallback_is_detected(tiny_models_dir, monkeypatch):
    """onnxruntime-gpu lists CUDA as available even without a GPU, then silently runs on the CPU."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = Registry([tiny_models_dir]).load("tiny_a", device="auto")
    if clf.active_provider == CUDA:  # pragma: no cover - a real GPU is present
        assert clf.warnings == []
        return
    assert clf.active_provider == CPU
    assert any("could not be used" in w for w in clf.warnings) and "could not be used" in clf.device_fallback


def test_cuda_session_creation_failure_falls_back_with_warning(tiny_models_dir, monkeypatch):
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])

    def fake(data, sess_options=None, providers=None):
        if providers and CUDA in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected\nmore detail")
        return real(data, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(model_mod.ort, "InferenceSession", fake)
    clf = Registry([tiny_models_dir]).load("tiny_b", device="cuda")
    assert clf.active_provider == CPU
    assert clf.warnings == [
        "CUDA session could not be created (CUDA failure 100: no CUDA-capable device is detected); running on the CPU"
    ]
    assert clf.device_fallback == clf.warnings[0]
    with pytest.raises(ModelError, match="cannot run on CUDA: CUDA session could not be created"):
        require_cuda(clf)


def test_unknown_device(tiny_models_dir):
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        Registry([tiny_models_dir]).load("tiny_a", device="tpu")


def test_threads_setting_reaches_the_session(tiny_models_dir):
    clf = Registry([tiny_models_dir]).load("tiny_a", threads=1)
    assert clf.members[0].session.get_session_options().intra_op_num_threads == 1


def _orientation_sensitive_model(dest, views, size=16, temperature=1.3):
    """A real ONNX model whose logit is a fixed position-weighted sum of the pixels (not rotation invariant)."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(3).normal(0, 1e-4, (1, size, size, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["image", "w"], ["wx"]),
            helper.make_node("ReduceSum", ["wx", "axes"], ["logit"], keepdims=1),
        ],
        "orient",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    card_path = make_tiny_model(dest, "orient", size=size, temperature=temperature)
    onnx.save(proto, str(dest / "orient.onnx"))
    card = json.loads(card_path.read_text())
    import hashlib

    card["sha256"] = hashlib.sha256((dest / "orient.onnx").read_bytes()).hexdigest()
    if views is not None:
        card["test_time_augmentation"] = {"views": views, "combine": "mean_logit"}
    card_path.write_text(json.dumps(card))
    return weights[0]


@pytest.mark.parametrize("views", [None, [0, 5, 2], list(range(8))])
def test_test_time_augmentation_averages_logits_of_the_card_views(tmp_path, views):
    from engine.preprocess import dihedral

    w = _orientation_sensitive_model(tmp_path, views)
    clf = Registry([tmp_path]).load("orient", device="cpu")
    assert clf.members[0].card.tta_views == tuple(views or [0])
    (spec,) = clf.preprocessings
    x = _batch(spec)
    ks = views or [0]
    z = np.mean([(dihedral(x, k).astype(np.float64) * w).sum(axis=(1, 2, 3)) for k in ks], axis=0)
    pred = clf.predict({spec: x})
    np.testing.assert_allclose(pred.p_all, 1 / (1 + np.exp(-z / 1.3)), rtol=1e-5, atol=1e-6)
    # the views really differ for this model, so averaging them is not a no-op
    if views and len(views) > 1:
        single = (x.astype(np.float64) * w).sum(axis=(1, 2, 3))
        assert np.abs(single - z).max() > 1e-3


def test_dihedral_views_are_the_eight_symmetries():
    from engine.preprocess import dihedral

    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    assert len({dihedral(x, k).tobytes() for k in range(8)}) == 8
    np.testing.assert_array_equal(dihedral(x, 0), x)
    np.testing.assert_array_equal(dihedral(x, 1), np.rot90(x, 1, axes=(1, 2)))
    np.testing.assert_array_equal(dihedral(x, 4), x[:, :, ::-1])
    with pytest.raises(ValueError):
        dihedral(x, 8)
