"""The models shipped in resources/models (when the training pipeline has produced them): every card
is valid, carries what a lab needs to trust it, loads, and classifies real cells sensibly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA as SHARED
from conftest import real_cell_sources

from engine.paths import models_dir
from engine.pipeline import classify, scan
from engine.registry import Registry


@pytest.fixture(scope="module")
def bundled() -> Registry:
    reg = Registry([models_dir()])
    if not reg.cards() and not reg.problems:
        pytest.skip(f"no models in {models_dir()} yet (the training pipeline ships them)")
    return reg


def test_no_invalid_bundled_card(bundled):
    assert bundled.problems == []


def test_bundled_cards_document_validation_and_provenance(bundled):
    for c in bundled.cards():
        assert c.version and c.created, c.name
        nums = [v for v in _numbers(c.metrics)]
        assert nums, f"{c.name}: card has no numeric validation metrics"
        assert any(k == "data" for k in _keys(c.metrics)), (
            f"{c.name}: metrics do not say what data they were measured on"
        )
        assert c.training, f"{c.name}: card has no training provenance"


def _bmp_folder(sources, dest):
    from PIL import Image

    for s in sources:
        with Image.open(s) as im:
            im.convert("RGB").save(dest / f"{s.stem}.bmp")
    return scan([dest])


@pytest.fixture(scope="module")
def cell_results(bundled, tmp_path_factory):
    items = _bmp_folder(real_cell_sources(), tmp_path_factory.mktemp("bundled-cells"))
    return {name: list(classify(items, bundled.load(name, device="cpu"), batch_size=8)) for name in bundled.names()}


def _accuracy_cells(tmp_path_factory):
    """40 real cells (20 ALL, 20 HEM, spread over subjects) from ../shared, else the 8 test cells."""
    if not SHARED.is_dir():
        return real_cell_sources(), 5 / 8
    picks = []
    for cls in ("all", "hem"):
        files = sorted(SHARED.glob(f"training_data/fold_1/{cls}/*.webp"))
        picks += files[:: max(1, len(files) // 20)][:20]
    return picks, 0.70


def test_bundled_models_classify_real_cells(bundled, cell_results, tmp_path_factory):
    for name, res in cell_results.items():
        assert [r.status for r in res] == ["ok"] * len(res), name
        p = np.array([r.p_all for r in res])
        assert ((p >= 0) & (p <= 1)).all(), name
    sources, min_bal_acc = _accuracy_cells(tmp_path_factory)
    items = _bmp_folder(sources, tmp_path_factory.mktemp("accuracy-cells"))
    truth = np.array([it.file.endswith("_all.bmp") for it in items])
    for c in bundled.cards():
        if c.is_ensemble:
            continue  # its members are checked; the ensemble is their mean (next test)
        p = np.array([r.p_all for r in classify(items, bundled.load(c.name, device="cpu"), batch_size=8)])
        pred = p >= c.threshold
        bal = (np.mean(pred[truth]) + np.mean(~pred[~truth])) / 2
        # a working model is far above this; broken preprocessing (channel order, scaling, crop) is ~0.5
        assert bal >= min_bal_acc, f"{c.name}: balanced accuracy {bal:.2f} on {len(items)} real cells"


def test_bundled_ensemble_is_mean_of_members(bundled, cell_results):
    for c in bundled.cards():
        if not c.is_ensemble or not all(m in cell_results for m in c.members):
            continue
        for k, r in enumerate(cell_results[c.name]):
            members = [cell_results[m][k].p_all for m in c.members]
            assert r.p_all == pytest.approx(np.mean(members), abs=1e-9)


def _numbers(d, depth=0):
    for k, v in d.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "data":
            yield v
        elif isinstance(v, dict) and depth < 2:
            yield from _numbers(v, depth + 1)


def _keys(d, depth=0):
    for k, v in d.items():
        yield k
        if isinstance(v, dict) and depth < 2:
            yield from _keys(v, depth + 1)
