"""What each test-time view adds (issue 29 item 2): evidence for how many views a card ships, and for a one-view
"first look" that is honest about its cost.

Every view is one more network run per cell, so a view ships only if the cross-validation shows it helps.  From a
run's per-view out-of-fold logits, :func:`views_report` scores each view alone and the mean logit of the first
1, 2, ... views (in the order given, the card's order), on the measures that decide (docs/models.md): AUROC
(threshold-free), and with the temperature and threshold cross-fitted between subject-disjoint folds, the
healthy donors' mean share of cells called right (and the ALL patients'), weighted F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _score(z: np.ndarray, y: np.ndarray, subjects: np.ndarray, folds: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    from .metrics import compute_cross_fitted, donor_summary

    m = compute_cross_fitted(z, y, folds, subjects)
    donors = donor_summary(m.get("per_subject_accuracy", {}))
    return {
        "auroc": float(roc_auc_score(y, z)),
        "healthy_mean_share_right": donors.get("healthy_donors", {}).get("mean_share_called_right"),
        "healthy_worst_share_right": donors.get("healthy_donors", {}).get("worst_share"),
        "all_mean_share_right": donors.get("all_patients", {}).get("mean_share_called_right"),
        "weighted_f1": float(m["weighted_f1"]),
    }


def views_report(
    logits: np.ndarray,
    views: Sequence[int],
    y: np.ndarray,
    subjects: Sequence[str],
    folds: np.ndarray | None = None,
) -> dict:
    """``logits``: (cells, len(views)) out-of-fold logits, column j of dihedral view ``views[j]``; ``y`` 1 = ALL;
    ``subjects`` the donor of each cell (healthy donors' ids start with "H", as C-NMC names them); ``folds``: the
    cross-fitting folds (default: two subject-disjoint halves, :func:`training.data.subject_halves`).

    Returns ``{"single": [...], "first_k": [...]}``: each view alone, and the mean logit of the first k views with
    what it adds to the first k - 1 (``gain``)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    subjects = np.asarray([str(s) for s in subjects])
    if z.ndim != 2 or z.shape != (len(y), len(views)) or len(subjects) != len(y):
        raise ValueError(f"logits must be (cells, views) = ({len(y)}, {len(views)}), got {z.shape}")
    if folds is None:
        from .data import subject_halves

        folds = subject_halves(subjects.tolist(), 0)
    folds = np.asarray(folds)
    single = [{"views": [int(v)], **_score(z[:, j], y, subjects, folds)} for j, v in enumerate(views)]
    first_k: list[dict] = []
    for k in range(1, len(views) + 1):
        s = {"views": [int(v) for v in views[:k]], **_score(z[:, :k].mean(axis=1), y, subjects, folds)}
        if first_k:
            prev = first_k[-1]
            s["gain"] = {
                key: None if s[key] is None or prev[key] is None else s[key] - prev[key]
                for key in ("auroc", "healthy_mean_share_right", "all_mean_share_right", "weighted_f1")
            }
        first_k.append(s)
    return {
        "data": f"{len(y)} out-of-fold cells of {len(set(subjects.tolist()))} donors; temperature and threshold "
        "cross-fitted between subject-disjoint folds",
        "single": single,
        "first_k": first_k,
    }


def format_views(report: dict) -> str:
    """The report as a plain-text table (one row per view set; network runs per cell = views)."""

    def pct(v) -> str:
        return "   n/a" if v is None else f"{100 * v:6.1f}"

    lines = [
        f"{'views':<18}{'runs':>5}{'AUROC':>8}{'healthy %':>10}{'worst H %':>10}{'ALL %':>8}{'wF1':>7}",
    ]
    for label, rows in (("alone", report["single"]), ("first k", report["first_k"])):
        lines.append(f"-- {label}")
        for r in rows:
            lines.append(
                f"{','.join(map(str, r['views'])):<18}{len(r['views']):>5}{r['auroc']:8.4f}"
                f"{pct(r['healthy_mean_share_right']):>10}{pct(r['healthy_worst_share_right']):>10}"
                f"{pct(r['all_mean_share_right']):>8}{r['weighted_f1']:7.3f}"
            )
    return "\n".join(lines)
