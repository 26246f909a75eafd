"""Donor-level cross-validation over every subject in ../shared (issue 25): one fold file, one scorer.

Why: a number measured on a few donors is a rumour.  The 3.0 model looked best on a 9-donor panel and transferred
worst to patients outside it, because nearly every healthy donor it had seen had small cells.  So every recipe is
scored on the same subject-grouped folds, with the nine large-celled healthy donors spread over them, and the
scorer reports each donor with its cell count, the large-celled donors apart from the rest.

The fold file (``training/folds/donor_cv.json``) is made once by :func:`make_folds` (deterministic: largest donor
first, to the fold that holds least of its kind) and committed; ``load_folds`` refuses a data set whose subjects it
does not cover, so that a new subject cannot slip into training folds unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import best_threshold, calibrated, ece, fit_platt

FOLD_FILE = Path(__file__).resolve().parent / "folds" / "donor_cv.json"

#: Healthy donors whose cells cover >= 0.14 of the 450x450 frame on average (../shared/data/README.md): the donors
#: on which size-led models fail.  Every table reports them apart.
LARGE_CELLED = ("H1", "H3", "H4", "H5", "H6", "H7", "H10", "H11", "H48")

#: The selection rule, fixed before any recipe was scored (issue 25): at each recipe's balanced-accuracy threshold
#: from its out-of-fold predictions, the highest healthy donors' mean share called HEM among recipes whose ALL
#: patients' mean share called ALL is >= 0.90; ties by AUROC.
SELECTION_RULE = (
    "at the recipe's balanced-accuracy threshold (Platt-calibrated out-of-fold P), the highest healthy donors' mean "
    "share called HEM among recipes with ALL patients' mean share called ALL >= 0.90; ties by AUROC"
)
ALL_MEAN_FLOOR = 0.90


def make_folds(subjects: Sequence[str], labels: Sequence[int], n_folds: int = 5) -> dict[str, int]:
    """subject -> fold.  Large-celled healthy donors, then the other healthy donors, then the ALL patients, each
    group largest first, each subject to the fold holding the fewest of its group (then the fewest cells of its
    class, then the lowest index): every fold gets some large-celled donors and a similar class mix."""
    count: dict[str, int] = {}
    cls: dict[str, int] = {}
    for s, y in zip(subjects, labels):
        count[s] = count.get(s, 0) + 1
        cls[s] = int(y)
    healthy = [s for s in count if cls[s] == 0]
    groups = [
        [s for s in healthy if s in LARGE_CELLED],
        [s for s in healthy if s not in LARGE_CELLED],
        [s for s in count if cls[s] == 1],
    ]
    fold_of: dict[str, int] = {}
    cells = np.zeros((2, n_folds))
    for group in groups:
        held = np.zeros(n_folds)
        for s in sorted(group, key=lambda s: (-count[s], s)):
            k = min(range(n_folds), key=lambda k: (held[k], cells[cls[s], k], k))
            fold_of[s] = k
            held[k] += 1
            cells[cls[s], k] += count[s]
    return fold_of


def write_fold_file(fold_of: dict[str, int], subjects, labels, path: Path = FOLD_FILE) -> None:
    from .files import write_json

    n = max(fold_of.values()) + 1
    count = {s: int(sum(1 for t in subjects if t == s)) for s in fold_of}
    cls = {s: ("ALL" if y else "HEM") for s, y in zip(subjects, labels)}
    folds = []
    for k in range(n):
        subs = sorted((s for s in fold_of if fold_of[s] == k), key=_subject_order)
        folds.append(
            {
                "fold": k,
                "subjects": subs,
                "large_celled_healthy": [s for s in subs if s in LARGE_CELLED],
                "cells": {c: sum(count[s] for s in subs if cls[s] == c) for c in ("ALL", "HEM")},
            }
        )
    write_json(
        path,
        {
            "about": "Donor-level cross-validation folds over the 51 subjects of ../shared (issue 25); made by "
            "training.donor_cv.make_folds; every recipe is scored on these folds.",
            "n_folds": n,
            "large_celled_healthy": list(LARGE_CELLED),
            "folds": folds,
        },
    )


def _subject_order(s: str):
    digits = s.lstrip("Hh")
    return (s.startswith("H"), int(digits) if digits.isdigit() else 0, s)


def fold_of_subject(path: Path = FOLD_FILE) -> dict[str, int]:
    """subject -> fold, as the fold file says."""
    d = json.loads(Path(path).read_text())
    return {s: f["fold"] for f in d["folds"] for s in f["subjects"]}


def load_folds(subjects: Sequence[str], path: Path = FOLD_FILE) -> np.ndarray:
    """Fold id per cell from the fold file; raises ValueError naming subjects the file does not place."""
    fold_of = fold_of_subject(path)
    missing = sorted(set(subjects) - set(fold_of), key=_subject_order)
    if missing:
        raise ValueError(f"{path} places no fold for subject(s) {missing}; remake it (leukoscan-train cv --new-folds)")
    return np.asarray([fold_of[s] for s in subjects], dtype=np.int8)


# ------------------------------------------------------------------------------------------------ scoring


def _donor_table(pred: np.ndarray, p: np.ndarray, y: np.ndarray, subjects: np.ndarray) -> dict:
    out = {}
    for s in sorted(set(subjects.tolist()), key=_subject_order):
        sel = subjects == s
        out[s] = {
            "class": "ALL" if y[sel][0] == 1 else "HEM",
            "n": int(sel.sum()),
            "share_right": round(float((pred[sel] == y[sel]).mean()), 4),
            "median_p_all": round(float(np.median(p[sel])), 4),
            "large_celled": s in LARGE_CELLED,
        }
    return out


def _summarise(donors: dict) -> dict:
    def stats(keys):
        v = [donors[s]["share_right"] for s in keys]
        if not v:
            return None
        worst = min(keys, key=lambda s: donors[s]["share_right"])
        return {
            "n_donors": len(v),
            "n_cells": int(sum(donors[s]["n"] for s in keys)),
            "mean": round(float(np.mean(v)), 4),
            "worst": round(float(min(v)), 4),
            "worst_subject": worst,
            "right_at_case_level": int(sum(x > 0.5 for x in v)),
        }

    hem = [s for s, d in donors.items() if d["class"] == "HEM"]
    return {
        "healthy": stats(hem),
        "healthy_large_celled": stats([s for s in hem if donors[s]["large_celled"]]),
        "healthy_other": stats([s for s in hem if not donors[s]["large_celled"]]),
        "all_patients": stats([s for s, d in donors.items() if d["class"] == "ALL"]),
        "subjects_right_at_case_level": int(sum(d["share_right"] > 0.5 for d in donors.values())),
        "n_subjects": len(donors),
    }


def score(logits: np.ndarray, y: np.ndarray, subjects: Sequence[str], folds: np.ndarray) -> dict:
    """Everything the comparison table reports for out-of-fold ``logits`` (one per cell, each from a model that
    never saw the cell's donor).

    - ``at_oof_threshold``: Platt calibration and the balanced-accuracy threshold fitted on all out-of-fold
      predictions (the selection rule's operating point; what the shipped card uses).
    - ``cross_fitted``: calibration and threshold fitted on the other folds only (no optimism from the choice).
    - ``per_fold``: AUROC and donor summaries of each fold at the pooled operating point.
    """
    from sklearn.metrics import roc_auc_score

    z = np.asarray(logits, np.float64)
    y = np.asarray(y).astype(int)
    subj = np.asarray(subjects)
    t, shift = fit_platt(z, y)
    p = calibrated(z, t, shift)
    th = best_threshold(p, y, "balanced_accuracy")
    pred = (p >= th).astype(int)
    donors = _donor_table(pred, p, y, subj)
    at_95 = _healthy_at_all_mean(p, y, subj, 0.95)
    pooled = {
        "healthy_mean_where_all_mean_0_95": at_95,
        "auroc": round(float(roc_auc_score(y, z)), 4),
        "ece": round(ece(p, y), 4),
        "threshold": th,
        "temperature": t,
        "logit_shift": shift,
        **_summarise(donors),
        "donors": donors,
    }
    # cross-fitted: per fold, calibration and threshold from the other folds
    pc, pred_c = np.zeros(len(y)), np.zeros(len(y), int)
    for k in sorted(set(folds.tolist())):
        tr, te = folds != k, folds == k
        tk, sk = fit_platt(z[tr], y[tr])
        thk = best_threshold(calibrated(z[tr], tk, sk), y[tr], "balanced_accuracy")
        pc[te] = calibrated(z[te], tk, sk)
        pred_c[te] = (pc[te] >= thk).astype(int)
    donors_c = _donor_table(pred_c, pc, y, subj)
    crossed = {"ece": round(ece(pc, y), 4), **_summarise(donors_c), "donors": donors_c}
    per_fold = []
    for k in sorted(set(folds.tolist())):
        te = folds == k
        d = {s: donors[s] for s in set(subj[te].tolist())}
        auc = float(roc_auc_score(y[te], z[te])) if len(set(y[te].tolist())) == 2 else None
        per_fold.append({"fold": int(k), "n_cells": int(te.sum()), "auroc": auc, **_summarise(d)})
    return {"at_oof_threshold": pooled, "cross_fitted": crossed, "per_fold": per_fold}


def _healthy_at_all_mean(p: np.ndarray, y: np.ndarray, subjects: np.ndarray, floor: float) -> dict | None:
    """Descriptive, not the selection rule: the highest threshold at which the ALL patients' mean share called ALL
    is still >= ``floor``, and the healthy donors' mean share called HEM there (compares recipes at one
    sensitivity instead of at each one's own balanced-accuracy threshold)."""
    hem = sorted(set(subjects[y == 0].tolist()))
    pat = sorted(set(subjects[y == 1].tolist()))
    masks = {s: subjects == s for s in hem + pat}
    for t in np.round(np.arange(0.95, 0.04, -0.01), 2):
        call = p >= t
        if np.mean([call[masks[s]].mean() for s in pat]) >= floor:
            return {
                "threshold": float(t),
                "healthy_mean": round(float(np.mean([1 - call[masks[s]].mean() for s in hem])), 4),
            }
    return None


def selection_key(s: dict) -> tuple:
    """Sort key of :data:`SELECTION_RULE` (larger is better) for a :func:`score` result."""
    a = s["at_oof_threshold"]
    eligible = a["all_patients"]["mean"] >= ALL_MEAN_FLOOR
    return (eligible, a["healthy"]["mean"], a["auroc"])
