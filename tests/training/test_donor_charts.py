"""training.donor_charts: the per-donor chart of docs/models.md, drawn from a card."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib")

from tinymodels import make_tiny_model

from engine.card import load_card
from engine.heldout import held_out_block
from training.donor_charts import draw, main


def test_chart_of_a_card_with_per_donor_numbers_and_none_without(tmp_path):
    path = make_tiny_model(tmp_path / "m", "t")
    assert draw(load_card(path), out=tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    data = json.loads(path.read_text())
    data["metrics"]["held_out"] = held_out_block(
        {"5": {"n": 9, "class": "ALL", "accuracy": 0.8}, "H6": {"n": 9, "class": "HEM", "accuracy": 0.0}},
        {"ALL": {"recall": 0.8}, "HEM": {"recall": 0.0}},
        "unit test",
    )
    data["metrics"]["held_out"]["cell_area_baseline"] = {"donors": {"healthy_donors": {"per_subject": {"H6": 0.1}}}}
    data["training"]["train_subjects"] = ["1"]
    path.write_text(json.dumps(data))
    out = draw(load_card(path), out=tmp_path / "t_donors.png")
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 5000
    assert main([str(path), "--out", str(tmp_path / "docs"), "--suffix", "_x"]) == 0
    assert (tmp_path / "docs" / "t_x_donors.png").exists()


def test_export_draws_the_chart_of_the_card_it_wrote(tmp_path):
    """leukoscan-train export / ensemble redraw docs/img/<name>_donors.png (here: into tmp) from the new card."""
    from tinymodels import make_tiny_ensemble

    from training.export_run import _donor_chart

    for name in ("a", "b"):
        make_tiny_model(tmp_path / "models", name)
    ens = make_tiny_ensemble(tmp_path / "models", ["a", "b"], name="ab")
    (tmp_path / "models" / "broken.json").write_text("{")  # another card that does not load: ignored
    data = json.loads(ens.read_text())
    data["metrics"]["held_out"] = held_out_block(
        {"H6": {"n": 9, "class": "HEM", "accuracy": 0.3}}, {"ALL": {"recall": 0.0}, "HEM": {"recall": 0.3}}, "unit test"
    )
    ens.write_text(json.dumps(data))
    _donor_chart(ens, tmp_path / "img")
    assert (tmp_path / "img" / "ab_donors.png").stat().st_size > 5000
    _donor_chart(tmp_path / "models" / "a.json", tmp_path / "img")  # no per-donor numbers: nothing drawn
    assert not (tmp_path / "img" / "a_donors.png").exists()
