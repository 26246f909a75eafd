"""training.views: what each test-time view adds, on synthetic per-view logits whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from training.views import format_views, views_report


def synthetic(n_per_donor: int = 150, junk_view: bool = False, seed: int = 0):
    """12 donors (5 healthy 'H..'), a per-cell signal, and 4 views = signal + independent noise each (averaging
    views helps); ``junk_view``: the last view is noise only (adding it must hurt)."""
    rng = np.random.default_rng(seed)
    donors = [f"H{i}" for i in range(5)] + [str(i) for i in range(7)]
    subjects = np.repeat(donors, n_per_donor)
    y = np.array([0 if s.startswith("H") else 1 for s in subjects])
    signal = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 0.6, len(y))
    z = np.stack([signal + rng.normal(0, 1.5, len(y)) for _ in range(4)], axis=1)
    if junk_view:
        z[:, 3] = rng.normal(0, 2.0, len(y))
    return z, y, subjects


def test_more_independent_views_help_and_the_report_says_by_how_much():
    z, y, subjects = synthetic()
    rep = views_report(z, [0, 5, 2, 7], y, subjects)
    assert [r["views"] for r in rep["first_k"]] == [[0], [0, 5], [0, 5, 2], [0, 5, 2, 7]]
    assert [r["views"] for r in rep["single"]] == [[0], [5], [2], [7]]
    aurocs = [r["auroc"] for r in rep["first_k"]]
    assert aurocs[-1] > aurocs[0] + 0.02  # four noisy views average into a better score than one
    assert all(r["gain"]["auroc"] > 0 for r in rep["first_k"][1:])
    assert rep["first_k"][-1]["healthy_mean_share_right"] > rep["first_k"][0]["healthy_mean_share_right"]
    assert "gain" not in rep["first_k"][0] and "12 donors" in rep["data"]
    assert 0.0 <= rep["first_k"][0]["healthy_mean_share_right"] <= 1.0


def test_a_view_that_adds_nothing_shows_as_a_loss():
    z, y, subjects = synthetic(junk_view=True)
    rep = views_report(z, [0, 1, 2, 3], y, subjects)
    assert rep["first_k"][-1]["gain"]["auroc"] < 0
    assert rep["single"][3]["auroc"] == pytest.approx(0.5, abs=0.05)


def test_format_and_shape_check():
    z, y, subjects = synthetic(n_per_donor=40)
    text = format_views(views_report(z[:, :2], [0, 4], y, subjects))
    assert "0,4" in text and "healthy %" in text and len(text.splitlines()) == 7
    with pytest.raises(ValueError, match="logits must be"):
        views_report(z, [0, 1], y, subjects)
