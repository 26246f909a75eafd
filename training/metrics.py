"""Evaluation: metrics, temperature scaling, operating point, review band, plots (scikit-learn + matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import save_figure
from .files import write_json as _write_json


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the NLL of sigmoid(logit / T) (1-D bounded search)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def nll(log_t):
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, s) - y * s))

    r = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(r.x))


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling written as the card's temperature + a logit shift: P = sigmoid((logit + shift) / T).

    The shift removes the bias that class-weighted training puts into the logits (a temperature alone cannot);
    the exporter adds it to the model's output bias, so the engine still computes sigmoid(logit / T)."""
    from scipy.optimize import minimize

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def nll(ab):
        s = ab[0] * z + ab[1]
        return float(np.mean(np.logaddexp(0, s) - y * s))

    r = minimize(nll, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.05, 20.0), (-20.0, 20.0)])
    a, b = float(r.x[0]), float(r.x[1])
    return 1.0 / a, b / a


def calibrated(logits, temperature: float, shift: float = 0.0) -> np.ndarray:
    return sigmoid((np.asarray(logits, dtype=np.float64) + shift) / temperature)


def weighted_f1(y, pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="weighted", zero_division=0))


def balanced_accuracy(y, pred) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


#: How an operating point is chosen.  Weighted F1 depends on the class mix of the cells it is fitted on (a panel of
#: 811 ALL and 268 HEM cells pulls the threshold towards ALL); balanced accuracy (the mean of the two recalls,
#: Youden's J) does not, which is what a new donor's sample needs (a healthy donor's sample holds no blasts at all).
THRESHOLD_RULES = {
    "weighted_f1": (weighted_f1, "maximises weighted F1"),
    "balanced_accuracy": (
        balanced_accuracy,
        "maximises balanced accuracy (mean of ALL and HEM recall; prevalence-free)",
    ),
}


def best_threshold(p: np.ndarray, y: np.ndarray, rule: str = "weighted_f1") -> float:
    """Threshold on P(ALL) maximising ``rule`` (:data:`THRESHOLD_RULES`; grid 0.05..0.95 step 0.01; ties -> closest
    to 0.5)."""
    score = THRESHOLD_RULES[rule][0]
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = np.array([score(y, (p >= t).astype(int)) for t in grid])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])


#: The "needs review" band must catch most of the errors on donors the model never saw: two thirds of the held-out
#: errors, within at most +-0.30 of the threshold (a wider band would ask for review of most cells).
REVIEW_ERROR_SHARE = 2 / 3
REVIEW_CAP = 0.30
REVIEW_RULE = "smallest band |P - threshold| < m holding >= 2/3 of the held-out errors (step 0.01, cap 0.30)"


def review_margin(
    p: np.ndarray, y: np.ndarray, threshold: float, error_share: float = REVIEW_ERROR_SHARE, cap: float = REVIEW_CAP
) -> float:
    """Smallest margin m (step 0.01, <= cap) whose band |P - t| < m holds at least ``error_share`` of the errors."""
    wrong = (p >= threshold).astype(int) != y
    if not wrong.any():
        return 0.05
    dist = np.abs(p - threshold)
    for m in np.round(np.arange(0.01, cap + 1e-9, 0.01), 2):
        if (dist[wrong] < m).mean() >= error_share:
            return float(m)
    return float(cap)


#: Equal-width bins of the ECE, of the reliability diagram that shows it and of the card's reliability table.
ECE_BINS = 15


def reliability_bins(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per non-empty bin of P(ALL): mean predicted P(ALL), observed share of ALL, cell count.  scikit-learn's
    ``calibration_curve`` binning (``CalibrationDisplay`` draws the same points), so the ECE printed on a reliability
    diagram is computed from exactly the bins it draws.  Stored in the card (``reliability``) for the app's
    diagram, which must not need scikit-learn."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    idx = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p)
    n = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    nz = n > 0
    return {
        "bins": int(bins),
        "mean_p_all": [round(float(v), 4) for v in sum_p[nz] / n[nz]],
        "fraction_all": [round(float(v), 4) for v in sum_y[nz] / n[nz]],
        "n_cells": n[nz].astype(int).tolist(),
    }


def ece(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(ALL): |mean P - share ALL| per equal-width bin, weighted by bin size (the
    bins of :func:`reliability_bins`)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not len(p):
        return 0.0
    idx = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p)
    gap = np.abs(np.bincount(idx, weights=p, minlength=bins) - np.bincount(idx, weights=y, minlength=bins))
    return float(gap.sum() / len(p))


def compute(
    p: np.ndarray, y: np.ndarray, threshold: float, subjects: Sequence[str] | None = None, margin: float | None = None
) -> dict:
    """All card/metrics.json numbers for calibrated probabilities ``p`` of ALL and labels ``y`` (1 = ALL)."""
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y).astype(int)
    pred = (p >= threshold).astype(int)
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=[1, 0], zero_division=0)
    cm = confusion_matrix(y, pred, labels=[1, 0])
    out = {
        "n_cells": int(len(y)),
        "threshold": float(threshold),
        "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "auroc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else None,
        "ece": ece(p, y),
        "reliability": reliability_bins(p, y),
        "brier": float(brier_score_loss(y, p)),
        "per_class": {
            "ALL": {"precision": float(prec[0]), "recall": float(rec[0]), "f1": float(f1[0]), "support": int(sup[0])},
            "HEM": {"precision": float(prec[1]), "recall": float(rec[1]), "f1": float(f1[1]), "support": int(sup[1])},
        },
        "confusion_matrix": {"labels": ["ALL", "HEM"], "rows_true_cols_pred": cm.tolist()},
    }
    if subjects is not None:
        subj = np.asarray(subjects)
        per = {}
        for s in sorted(
            set(subjects), key=lambda s: (s.startswith("H"), int(s.lstrip("H")) if s.lstrip("H").isdigit() else 0, s)
        ):
            sel = subj == s
            per[s] = {
                "n": int(sel.sum()),
                "class": "ALL" if y[sel][0] == 1 else "HEM",
                "accuracy": float((pred[sel] == y[sel]).mean()),
                "mean_p_all": float(p[sel].mean()),
            }
        out["per_subject_accuracy"] = per
        accs = [v["accuracy"] for v in per.values()]
        out["subject_accuracy_min"] = float(min(accs))
        out["subject_accuracy_median"] = float(np.median(accs))
    if margin is not None:
        band = np.abs(p - threshold) < margin
        out["review_margin"] = float(margin)
        out["needs_review_fraction"] = float(band.mean())
        out["accuracy_outside_review_band"] = float((pred[~band] == y[~band]).mean()) if (~band).any() else None
        wrong = pred != y
        out["errors_flagged_for_review"] = float(band[wrong].mean()) if wrong.any() else None
    return out


def cross_fitted(logits: np.ndarray, y: np.ndarray, folds: np.ndarray, fit_t: bool = True, rule: str = "weighted_f1"):
    """Honest calibration: for each fold k, temperature, logit shift and threshold are fitted on the OTHER folds' OOF logits
    and applied to fold k.  Returns calibrated P and the per-fold (T, threshold) used; the resulting metrics
    carry no optimism from choosing T or the threshold on the cells they are measured on."""
    p = np.zeros(len(y))
    thr = np.zeros(len(y))
    used = []
    for k in sorted(set(folds.tolist())):
        tr, te = folds != k, folds == k
        t, shift = fit_platt(logits[tr], y[tr]) if fit_t else (1.0, 0.0)
        th = best_threshold(calibrated(logits[tr], t, shift), y[tr], rule)
        p[te] = calibrated(logits[te], t, shift)
        thr[te] = th
        used.append({"fold": int(k), "temperature": t, "logit_shift": shift, "threshold": th})
    return p, thr, used


def compute_cross_fitted(logits, y, folds, subjects, fit_t: bool = True, rule: str = "weighted_f1") -> dict:
    """Metrics with per-fold thresholds/temperatures fitted on the other folds (see :func:`cross_fitted`)."""
    p, thr, used = cross_fitted(logits, y, folds, fit_t, rule)
    pred = (p >= thr).astype(int)
    # reuse compute() with a per-cell threshold by shifting: pred = p >= thr  <=>  (p - thr + 0.5) >= 0.5
    m = compute(p, y, 0.5, subjects)
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=[1, 0], zero_division=0)
    m.update(
        {
            "threshold": "per fold, fitted on the other folds",
            "weighted_f1": float(f1_score(y, pred, average="weighted")),
            "macro_f1": float(f1_score(y, pred, average="macro")),
            "accuracy": float(accuracy_score(y, pred)),
            "per_class": {
                "ALL": {
                    "precision": float(prec[0]),
                    "recall": float(rec[0]),
                    "f1": float(f1[0]),
                    "support": int(sup[0]),
                },
                "HEM": {
                    "precision": float(prec[1]),
                    "recall": float(rec[1]),
                    "f1": float(f1[1]),
                    "support": int(sup[1]),
                },
            },
            "confusion_matrix": {
                "labels": ["ALL", "HEM"],
                "rows_true_cols_pred": confusion_matrix(y, pred, labels=[1, 0]).tolist(),
            },
            "cross_fit": used,
        }
    )
    subj = np.asarray(subjects)
    for s, d in m.get("per_subject_accuracy", {}).items():
        sel = subj == s
        d["accuracy"] = float((pred[sel] == y[sel]).mean())
    accs = [v["accuracy"] for v in m.get("per_subject_accuracy", {}).values()]
    if accs:
        m["subject_accuracy_min"] = float(min(accs))
        m["subject_accuracy_median"] = float(np.median(accs))
    return m


def run_facts(m, spec, tr, val_subjects, tta_views, weights, seconds: float, per_epoch_s) -> dict:
    """The metrics.json fields every held-out-panel recipe writes the same way (preprocessing, subjects, test-time
    views, weights, timing, data): one place, so ``export`` reads the same keys from every run."""
    return {
        "test_time_augmentation": {"views": list(tta_views), "combine": "mean_logit"},
        "weights": weights or "none (random initialisation)",
        "preprocessing": {"height": spec.height, "width": spec.width, **spec.to_dict()},
        "train_subjects": sorted(set(np.asarray(m.subjects)[tr])),
        "val_subjects": sorted(set(val_subjects)),
        "timing_s": {"total": seconds, "per_epoch": per_epoch_s},
        "data": m.summary(),
    }


def held_out_fold(
    z: np.ndarray, y: np.ndarray, subjects: Sequence[str], seed: int, val_fold: int, rule: str = "weighted_f1"
) -> dict:
    """Operating point and honest metrics of one held-out subject fold (recipes without a full CV): Platt
    calibration, threshold and review margin fitted on the fold, metrics cross-fitted between two subject-disjoint
    halves of it.  Returns halves, honest, p, calibration, at_ship, validation (the card's wording)."""
    from .data import subject_halves

    halves = subject_halves(subjects, seed)
    t, shift = fit_platt(z, y)
    p = calibrated(z, t, shift)
    th = best_threshold(p, y, rule)
    mg = review_margin(p, y, th)
    return {
        "halves": halves,
        "honest": compute_cross_fitted(z, y, halves, subjects, rule=rule),
        "p": p,
        "calibration": {
            "temperature": t,
            "logit_shift": shift,
            "threshold": th,
            "review_margin": mg,
            "threshold_rule": f"{THRESHOLD_RULES[rule][1]} of the calibrated held-out-fold P(ALL) (grid 0.05-0.95)",
            "threshold_rule_id": rule,
            "review_margin_rule": REVIEW_RULE,
        },
        "at_ship": compute(p, y, th, subjects, mg),
        "validation": f"one held-out subject fold (fold {val_fold} of a 5-fold split by subject, "
        f"{len(set(subjects))} subjects never seen in training); temperature and threshold "
        f"cross-fitted between two subject-disjoint halves of it",
    }


# ---------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_confusion(plt, path: Path, p: np.ndarray, y: np.ndarray, threshold: float, title: str) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    names = np.array(["HEM", "ALL"])
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=120)
    ConfusionMatrixDisplay.from_predictions(
        names[y], names[(p >= threshold).astype(int)], labels=["ALL", "HEM"], cmap="Blues", colorbar=False, ax=ax
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nthreshold {threshold:.2f}", fontsize=9)
    return _save(plt, fig, path)


def _plot_roc(plt, path: Path, p: np.ndarray, y: np.ndarray, title: str) -> Path:
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=120)
    RocCurveDisplay.from_predictions(y, p, pos_label=1, name="P(ALL)", ax=ax, plot_chance_level=True)
    ax.set_xlabel("false positive rate (HEM called ALL)")
    ax.set_ylabel("true positive rate (ALL recall)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return _save(plt, fig, path)


def _plot_reliability(plt, path: Path, p: np.ndarray, y: np.ndarray, title: str) -> Path:
    from sklearn.calibration import CalibrationDisplay

    fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=120)
    CalibrationDisplay.from_predictions(
        y, p, n_bins=ECE_BINS, strategy="uniform", pos_label=1, ax=ax, name=f"ECE {ece(p, y):.3f} ({ECE_BINS} bins)"
    )
    ax.set_xlabel("predicted P(ALL)")
    ax.set_ylabel("observed fraction ALL")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return _save(plt, fig, path)


def _plot_curves(plt, path: Path, history: dict, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0), dpi=120)
    for name, curve in history.items():
        if "loss" in curve:
            axes[0].plot(range(1, len(curve["loss"]) + 1), curve["loss"], label=name, lw=1)
        if "val_weighted_f1" in curve:
            axes[1].plot(range(1, len(curve["val_weighted_f1"]) + 1), curve["val_weighted_f1"], label=name, lw=1)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation weighted F1")
    axes[1].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)


def plot_all(
    out_dir: Path,
    prefix: str,
    p: np.ndarray,
    y: np.ndarray,
    threshold: float,
    history: dict | None = None,
    title: str = "",
) -> list[Path]:
    """Confusion matrix, ROC, reliability diagram (+ training curves when ``history`` is given) as PNGs, drawn by
    scikit-learn's displays; the reliability diagram uses the :data:`ECE_BINS` bins of the ECE in its legend."""
    plt = _plt()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y).astype(int)
    files = [
        _plot_confusion(plt, out_dir / f"{prefix}_confusion.png", p, y, threshold, title),
        _plot_roc(plt, out_dir / f"{prefix}_roc.png", p, y, title),
        _plot_reliability(plt, out_dir / f"{prefix}_reliability.png", p, y, title),
    ]
    if history:
        files.append(_plot_curves(plt, out_dir / f"{prefix}_curves.png", history, title))
    return files


def write_json(path: Path, data: dict) -> None:
    """Atomically (:mod:`training.files`): an interrupted run never leaves half a metrics.json."""
    _write_json(path, data)


def donor_summary(per_subject: dict) -> dict:
    """The numbers that decide (docs/models.md): per class of donor, the mean and worst share of cells called
    right, and how many donors are called right at case level (share of ALL calls above / below 50 %).
    ``per_subject``: ``compute(...)["per_subject_accuracy"]``."""
    out = {}
    for cls, key in (("HEM", "healthy_donors"), ("ALL", "all_patients")):
        acc = {s: d["accuracy"] for s, d in per_subject.items() if d["class"] == cls}
        if not acc:
            continue
        worst = min(acc, key=acc.get)
        out[key] = {
            "n": len(acc),
            "mean_share_called_right": float(np.mean(list(acc.values()))),
            "worst_share": float(acc[worst]),
            "worst_subject": worst,
            "called_right_at_case_level": int(sum(v > 0.5 for v in acc.values())),
            "per_subject": {s: round(float(v), 4) for s, v in acc.items()},
        }
    return out


def cell_area(px: np.ndarray, fg_level: float = 10.0, batch: int = 512) -> np.ndarray:
    """Share of non-black pixels of each NHWC image (the cell's size in a fixed-scale window)."""
    return (
        np.concatenate(
            [(np.asarray(px[i : i + batch]).max(axis=3) > fg_level).mean(axis=(1, 2)) for i in range(0, len(px), batch)]
        )
        if len(px)
        else np.zeros(0)
    )


def area_baseline(
    px: np.ndarray, y: np.ndarray, subjects, tr: np.ndarray, va: np.ndarray, rule: str = "weighted_f1"
) -> dict:
    """The size-only model every model must beat on healthy donors: "ALL when the cell is larger than t", t
    chosen on the training donors by the model's own threshold ``rule``, scored on the held-out donors like a
    model."""
    score_of = THRESHOLD_RULES[rule][0]
    area_tr, area_va = cell_area(px[np.sort(tr)]), cell_area(px[np.sort(va)])
    y_tr, y_va = np.asarray(y)[np.sort(tr)], np.asarray(y)[np.sort(va)]
    grid = np.quantile(area_tr, np.linspace(0.02, 0.98, 97))
    t = float(max(grid, key=lambda g: score_of(y_tr, (area_tr >= g).astype(int))))
    span = float(np.ptp(area_tr)) or 1.0
    score = 1 / (1 + np.exp(-(area_va - t) / (0.05 * span)))  # monotone in area: AUROC is area's own
    m = compute(score, y_va, 0.5, [subjects[i] for i in np.sort(va)])
    return {
        "rule": f"ALL when the cell covers >= {t:.4f} of the input window (threshold fitted on the training "
        f"donors, {THRESHOLD_RULES[rule][1]})",
        "auroc": m["auroc"],
        "weighted_f1": m["weighted_f1"],
        "donors": donor_summary(m["per_subject_accuracy"]),
    }


def area_auroc(px: np.ndarray, y: np.ndarray, fg_level: float = 10.0) -> float:
    """AUROC of the cell's area alone (share of non-black pixels of each NHWC image) for labels ``y`` (1 = ALL):
    the size-only baseline every model has to beat on healthy donors."""
    from sklearn.metrics import roc_auc_score

    area = (np.asarray(px).max(axis=3) > fg_level).mean(axis=(1, 2))
    return float(roc_auc_score(np.asarray(y).astype(int), area))
