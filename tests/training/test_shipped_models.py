"""The models in resources/models are what training produced: the engine loads every card, the ONNX files
match their sha256, the export parity and honest validation metrics are recorded, and the ONNX graphs take
0-255 NHWC input with a dynamic batch (normalisation inside the graph)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.card import load_card, verify_onnx_file
from engine.preprocess import preprocess_file
from training.export import PARITY_MAX_P_DIFF

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"
CELLS = sorted((Path(__file__).resolve().parents[1] / "data" / "cells").glob("*.webp"))
SINGLE = ("inceptionv3", "vgg19")


def _cards():
    cards = {p.stem: load_card(p) for p in sorted(MODELS.glob("*.json"))}
    if not cards:
        pytest.skip(f"no model cards in {MODELS} yet")
    return cards


def test_shipped_cards_load_and_match_their_onnx():
    cards = _cards()
    for name, c in cards.items():
        assert c.name == name
        verify_onnx_file(c)  # exists + sha256
        if not c.is_ensemble:
            assert c.onnx_file.stat().st_size <= 100e6, f"{name}: ONNX over 100 MB"


def test_single_model_cards_record_honest_metrics_and_parity():
    for name, c in _cards().items():
        if c.is_ensemble:
            continue
        m = c.metrics
        assert "never saw" in m["data"] or "held-out" in m["data"], m["data"]
        for k in ("weighted_f1", "auroc", "ece"):
            assert 0.0 <= m[k] <= 1.0, (name, k)
        assert m["onnx_parity"]["pass"] and m["onnx_parity"]["max_abs_p_diff"] < PARITY_MAX_P_DIFF
        assert m["onnx_parity"]["n_cells"] >= 32
        assert c.threshold == pytest.approx(m["validation_at_card_threshold"]["threshold"])
        assert c.training["versions"]["tf2onnx"]
        if c.tta_views != (0,):  # the metrics were measured with the views the engine will run
            assert m["test_time_augmentation"]["views"] == list(c.tta_views)
            assert set(c.tta_views) <= set(c.training["recipe"].get("views", c.tta_views))


def test_ensemble_card_names_shipped_members():
    cards = _cards()
    ens = [c for c in cards.values() if c.is_ensemble]
    if not ens:
        pytest.skip(f"no ensemble card ships ({', '.join(sorted(cards))}): nothing to check")
    for c in ens:
        assert set(c.members) <= set(cards), c.members
        assert "weighted_f1" in c.metrics and "data" in c.metrics


@pytest.mark.skipif(len(CELLS) < 8, reason="tests/data/cells missing")
def test_shipped_onnx_runs_on_real_cells_with_dynamic_batch():
    ort = pytest.importorskip("onnxruntime")
    for c in _cards().values():
        if c.is_ensemble:
            continue
        sess = ort.InferenceSession(str(c.onnx_file), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        assert inp.name == c.input_name and list(inp.shape[1:]) == [c.input_size[0], c.input_size[1], 3]
        x = np.stack([preprocess_file(p, c.preprocessing) for p in CELLS])
        z_all = sess.run([c.output_name], {inp.name: x})[0][:, 0]
        z_one = np.array([sess.run([c.output_name], {inp.name: x[i : i + 1]})[0][0, 0] for i in range(3)])
        np.testing.assert_allclose(z_all[:3], z_one, atol=1e-3)
        p = 1 / (1 + np.exp(-z_all / c.temperature))
        assert np.isfinite(p).all()
