"""What a second test-time view adds, as the card says it (issue 29 item 2): from the cv table, and in both 4.0 cards."""

from __future__ import annotations

import json
from pathlib import Path

from engine.card import load_card
from training.probe_ship import views_evidence_block

REPO = Path(__file__).resolve().parents[2]


def _row(name: str, auroc: float, healthy: float, all_mean: float) -> dict:
    return {
        "recipe": {"name": name},
        "at_oof_threshold": {"auroc": auroc},
        "cross_fitted": {"healthy": {"mean": healthy}, "all_patients": {"mean": all_mean}},
    }


def test_pairs_each_recipe_with_its_two_view_twin():
    results = {
        "rows": [
            _row("a", 0.90, 0.70, 0.88),
            _row("a +tta", 0.905, 0.72, 0.87),
            _row("b", 0.80, 0.60, 0.90),  # no twin: not a pair
            _row("c", 0.85, 0.65, 0.85),
            _row("c +tta", 0.851, 0.64, 0.86),
        ]
    }
    block = views_evidence_block(results, 1)
    assert block["shipped_views"] == 1
    assert [p["recipe"] for p in block["pairs"]] == ["a", "c"]
    assert block["pairs"][0]["two_views"] == {
        "auroc": 0.905,
        "healthy_mean_cross_fitted": 0.72,
        "all_mean_cross_fitted": 0.87,
    }
    assert block["second_view_auroc_gain"] == [0.001, 0.005]


def test_shipped_cards_say_what_a_second_view_would_add():
    """Each shipped 4.0 card states its number of views and the cv evidence, consistent with the views it runs."""
    results = json.loads((REPO / "docs/runs/4.0/cv/results.json").read_text())
    for name in ("vgg19", "inceptionv3"):
        card = load_card(REPO / "resources/models" / f"{name}.json")
        block = card.raw["metrics"]["test_time_views"]
        assert block["shipped_views"] == len(card.tta_views)
        assert block == views_evidence_block(results, len(card.tta_views))
