"""training.donor_cv: the committed fold file and the scorer every recipe of the comparison goes through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import donor_cv


def _fold_file():
    return json.loads(donor_cv.FOLD_FILE.read_text())


def test_fold_file_places_every_subject_once_with_large_celled_donors_in_every_fold():
    d = _fold_file()
    subjects = [s for f in d["folds"] for s in f["subjects"]]
    assert len(subjects) == len(set(subjects)) == 51
    assert sum(s.startswith("H") for s in subjects) == 17
    for f in d["folds"]:
        assert f["large_celled_healthy"], f"fold {f['fold']} holds no large-celled healthy donor"
        assert set(f["large_celled_healthy"]) <= set(donor_cv.LARGE_CELLED)
        assert f["cells"]["ALL"] > 0 and f["cells"]["HEM"] > 0
    placed = {s for f in d["folds"] for s in f["large_celled_healthy"]}
    assert placed == set(donor_cv.LARGE_CELLED)


def test_make_folds_is_deterministic_and_spreads_each_group():
    rng = np.random.default_rng(0)
    subjects, labels = [], []
    for s in list(donor_cv.LARGE_CELLED) + ["H12", "H14", "H15"] + [str(i) for i in range(1, 16)]:
        n = int(rng.integers(5, 60))
        subjects += [s] * n
        labels += [0 if s.startswith("H") else 1] * n
    a = donor_cv.make_folds(subjects, labels, 5)
    assert a == donor_cv.make_folds(subjects, labels, 5)
    large = [a[s] for s in donor_cv.LARGE_CELLED]
    assert sorted(np.bincount(large, minlength=5).tolist()) == [1, 2, 2, 2, 2]


def test_load_folds_refuses_a_subject_the_file_does_not_place():
    with pytest.raises(ValueError, match="H999"):
        donor_cv.load_folds(["H6", "H999"])


def test_score_reports_each_donor_with_its_cell_count_and_the_large_celled_apart():
    # two healthy donors (one large-celled, always wrong), two patients (always right): logits say so
    subjects = ["H6"] * 10 + ["H12"] * 30 + ["5"] * 20 + ["9"] * 40
    y = np.array([0] * 40 + [1] * 60)
    z = np.concatenate([np.full(10, 2.0), np.full(30, -2.0), np.full(60, 2.0)])
    z = z + np.random.default_rng(1).normal(0, 0.01, len(z))
    folds = np.array([0] * 10 + [1] * 30 + [0] * 20 + [1] * 40)
    s = donor_cv.score(z, y, subjects, folds)
    a = s["at_oof_threshold"]
    assert a["donors"]["H6"] == pytest.approx(
        {
            "class": "HEM",
            "n": 10,
            "share_right": 0.0,
            "median_p_all": a["donors"]["H6"]["median_p_all"],
            "large_celled": True,
        }
    )
    assert a["donors"]["H12"]["share_right"] == 1.0 and a["donors"]["H12"]["n"] == 30
    assert a["healthy"]["mean"] == 0.5 and a["healthy"]["worst_subject"] == "H6"
    assert a["healthy_large_celled"]["mean"] == 0.0 and a["healthy_other"]["mean"] == 1.0
    assert a["all_patients"]["mean"] == 1.0
    assert a["subjects_right_at_case_level"] == 3
    assert [f["fold"] for f in s["per_fold"]] == [0, 1]


def test_selection_key_prefers_eligible_recipes_then_healthy_mean():
    def row(all_mean, healthy_mean, auroc):
        return {
            "at_oof_threshold": {"all_patients": {"mean": all_mean}, "healthy": {"mean": healthy_mean}, "auroc": auroc}
        }

    rows = [row(0.85, 0.95, 0.99), row(0.93, 0.70, 0.90), row(0.95, 0.70, 0.92)]
    best = max(rows, key=donor_cv.selection_key)
    assert best is rows[2]
