"""training.metrics: temperature scaling, operating point, review band, ECE, cross-fitting, plots."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from training.metrics import (
    best_threshold,
    compute,
    compute_cross_fitted,
    cross_fitted,
    ece,
    fit_temperature,
    plot_all,
    review_margin,
    sigmoid,
)


def _calibrated(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, n)
    y = (rng.uniform(size=n) < sigmoid(z)).astype(int)
    return z, y


def test_fit_temperature_recovers_overconfidence():
    z, y = _calibrated()
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.12)
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.12)


def test_ece_small_when_calibrated_large_when_not():
    z, y = _calibrated()
    assert ece(sigmoid(z), y) < 0.03
    assert ece(sigmoid(4 * z), y) > 0.05


def test_best_threshold_and_review_margin():
    y = np.array([0] * 50 + [1] * 50)
    p = np.r_[np.linspace(0.0, 0.6, 50), np.linspace(0.4, 1.0, 50)]
    t = best_threshold(p, y)
    assert 0.4 <= t <= 0.6
    m = review_margin(p, y, t)
    wrong = (p >= t).astype(int) != y
    assert (np.abs(p - t)[wrong] < m).mean() >= 0.5
    assert 0 < m <= 0.25


def test_compute_reports_what_the_card_needs():
    z, y = _calibrated()
    subjects = np.where(y == 1, "7", "H2").tolist()
    out = compute(sigmoid(z), y, 0.5, subjects, margin=0.1)
    for k in (
        "weighted_f1",
        "auroc",
        "ece",
        "per_class",
        "confusion_matrix",
        "per_subject_accuracy",
        "needs_review_fraction",
        "accuracy_outside_review_band",
    ):
        assert k in out
    cm = np.array(out["confusion_matrix"]["rows_true_cols_pred"])
    assert cm.sum() == len(y) and cm[0].sum() == y.sum()
    assert set(out["per_subject_accuracy"]) == {"7", "H2"}


def test_cross_fitting_never_uses_the_fold_it_scores():
    z, y = _calibrated()
    folds = np.arange(len(y)) % 4
    p, thr, used = cross_fitted(z, y, folds)
    # overwrite fold 0's own labels: the temperature/threshold applied to fold 0 must not change
    y2 = y.copy()
    y2[folds == 0] = 1 - y2[folds == 0]
    p2, thr2, used2 = cross_fitted(z, y2, folds)
    assert used[0] == used2[0]
    assert np.array_equal(p[folds == 0], p2[folds == 0]) and np.array_equal(thr[folds == 0], thr2[folds == 0])
    m = compute_cross_fitted(z, y, folds, np.where(y == 1, "1", "H1").tolist())
    assert 0.5 < m["weighted_f1"] <= 1.0 and len(m["cross_fit"]) == 4


def test_plots_are_written(tmp_path):
    z, y = _calibrated(400)
    files = plot_all(
        tmp_path, "m", sigmoid(z), y, 0.5, {"fold 0": {"loss": [1, 0.5], "val_weighted_f1": [0.6, 0.7]}}, "t"
    )
    assert [f.name for f in files] == ["m_confusion.png", "m_roc.png", "m_reliability.png", "m_curves.png"]
    assert all(f.stat().st_size > 1000 for f in files)


def test_platt_removes_a_logit_bias_that_temperature_cannot():
    from training.metrics import calibrated, fit_platt

    z, y = _calibrated()
    biased = 2.0 * (z - 1.0)  # what class-weighted training does: scaled and shifted logits
    t, shift = fit_platt(biased, y)
    assert t == pytest.approx(2.0, rel=0.15) and shift == pytest.approx(2.0, abs=0.3)
    assert ece(calibrated(biased, t, shift), y) < 0.03
    assert ece(sigmoid(biased / fit_temperature(biased, y)), y) > ece(calibrated(biased, t, shift), y)


def test_reliability_diagram_draws_the_bins_of_the_ece_it_prints(tmp_path, monkeypatch):
    """The diagram (scikit-learn's CalibrationDisplay) and the printed ECE use the same 15 bins; the card's
    reliability table holds exactly those points (the app draws it without scikit-learn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    from training.metrics import ECE_BINS, reliability_bins

    z, y = _calibrated(600)
    p = sigmoid(z)
    rel = reliability_bins(p, y)
    frac, mean_p = calibration_curve(y, p, n_bins=ECE_BINS)
    assert rel["bins"] == ECE_BINS == 15 and len(rel["mean_p_all"]) == len(mean_p) > 10
    np.testing.assert_allclose(rel["mean_p_all"], mean_p, atol=1e-4)
    np.testing.assert_allclose(rel["fraction_all"], frac, atol=1e-4)
    gap = sum(n * abs(a - b) for n, a, b in zip(rel["n_cells"], rel["mean_p_all"], rel["fraction_all"]))
    assert ece(p, y) == pytest.approx(gap / len(y), abs=1e-3)
    assert compute(p, y, 0.5)["reliability"] == rel

    plt.close("all")
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)  # keep the figures to look inside
    plot_all(tmp_path, "m", p, y, 0.5, None, "t")
    ax = plt.figure(plt.get_fignums()[2]).axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("ECE")]
    assert line.get_label() == f"ECE {ece(p, y):.3f} (15 bins)"
    np.testing.assert_allclose(line.get_xdata(), rel["mean_p_all"], atol=1e-4)
    np.testing.assert_allclose(line.get_ydata(), rel["fraction_all"], atol=1e-4)
    monkeypatch.undo()
    plt.close("all")
