"""A model whose output is NaN or +-Inf: no confident P(ALL) for those cells, and a model that is broken
on the load-time probe does not load (nor pass ``models --check``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import real_cell_sources
from tinymodels import make_tiny_ensemble, make_tiny_model, reference_p_all

from engine.card import ModelError
from engine.cli import main as cli_main
from engine.model import NON_FINITE
from engine.pipeline import classify, scan
from engine.registry import Registry


@pytest.mark.parametrize("kind", ["inf", "nan"])
def test_a_non_finite_output_gives_that_cell_no_score(tmp_path, kind):
    make_tiny_model(tmp_path, "broken", nonfinite=kind)
    make_tiny_model(tmp_path, "sound", seed=0)
    make_tiny_ensemble(tmp_path, ["sound", "broken"], name="both")
    batch = np.stack([np.zeros((32, 32, 3), np.float32), np.full((32, 32, 3), 255.0, np.float32)])
    reg = Registry([tmp_path])
    (spec,) = (clf := reg.load("broken", device="cpu")).preprocessings
    p = clf.predict({spec: batch}).p_all
    assert np.isclose(p[0], reference_p_all(batch[:1])[0]) and np.isnan(p[1])  # +Inf is not P(ALL) 1.0
    pred = reg.load("both", device="cpu").predict({spec: batch})
    assert np.isfinite(pred.p_all[0]) and np.isnan(pred.p_all[1]) and np.isnan(pred.member_p["broken"][1])
    assert np.isfinite(pred.member_p["sound"]).all()


def test_the_pipeline_makes_an_error_row_of_a_non_finite_output(tmp_path):
    make_tiny_model(tmp_path, "broken", nonfinite="inf", nonfinite_above=0.04)  # the two brightest cells
    clf = Registry([tmp_path]).load("broken", device="cpu")
    results = {r.path.name: r for r in classify(scan(real_cell_sources()), clf, batch_size=4)}
    bad = {n for n, r in results.items() if r.status == "error"}
    assert bad == {"UID_11_10_1_all.webp", "UID_35_8_3_all.webp"}
    assert all(results[n].p_all is None and "finite" in results[n].error for n in bad)
    assert all(np.isfinite(r.p_all) for n, r in results.items() if n not in bad)


@pytest.mark.parametrize("kind", ["inf", "nan"])
def test_load_probe_and_models_check_refuse_a_model_with_non_finite_output(tmp_path, monkeypatch, capsys, kind):
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path / "no-bundled-resources"))
    models = tmp_path / "models"
    make_tiny_model(models, "broken", nonfinite=kind, nonfinite_above=-1.0)  # the black probe image too
    make_tiny_model(models, "sound")
    with pytest.raises(ModelError, match=NON_FINITE):
        Registry([models]).load("broken", device="cpu")
    assert cli_main(["models", "--check", "--models-dir", str(models)]) == 3
    out = capsys.readouterr().out
    assert "check sound: loads and runs" in out and "check broken" not in out
    assert f"broken.onnx: {NON_FINITE}" in out
