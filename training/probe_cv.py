"""Recipes on frozen features, scored by donor-level cross-validation (issue 25), and the shipped refit.

A recipe names the cached features it reads (backbone, layers, pools), the views it trains and tests on, and how
cells are weighted.  ``cross_validate`` fits one linear head per fold of the committed fold file
(training/donor_cv.py) and returns out-of-fold logits; ``training/donor_cv.score`` turns them into the table.
Everything is cheap once the features are cached (seconds per recipe), so the comparison is rerun in full by
``leukoscan-train cv``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .probe import pool_slice

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)


@dataclass(frozen=True)
class Recipe:
    name: str
    arch: str  # "vgg19" | "inceptionv3" | "area" (cell area alone)
    layers: tuple[str, ...] = ()
    pools: tuple[str, ...] = ("mmean", "mstd")
    weighting: str = "class"  # "class": each class counts equally; "donor": each donor counts equally
    train_views: tuple[str, ...] = ("d0",)
    test_views: tuple[str, ...] = ("d0",)
    note: str = ""
    members: tuple[str, ...] = field(default=())  # an ensemble: names of recipes whose logits are averaged

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def design(feats: dict, r: Recipe, view: str, idx: np.ndarray) -> np.ndarray:
    return np.concatenate([pool_slice(feats[view][ln][idx], r.pools) for ln in r.layers], axis=1)


def sample_weights(y: np.ndarray, groups: np.ndarray, how: str) -> np.ndarray:
    """Weights with mean 1: each class (``class``) or each donor (``donor``, and each class in total) equal."""
    w = np.ones(len(y))
    if how == "donor":
        for s in set(groups.tolist()):
            sel = groups == s
            w[sel] = 1.0 / sel.sum()
    for c in (0, 1):
        sel = y == c
        w[sel] *= 0.5 / w[sel].sum()
    return w * len(y) / w.sum()


@dataclass
class Head:
    """A standardised L2 logistic regression, stored as (w, b) on the raw features."""

    w: np.ndarray
    b: float
    C: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.b


def fit_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float) -> Head:
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=3000, tol=1e-4)
    clf.fit((x - mu) / sd, y, sample_weight=weights)
    w = clf.coef_[0] / sd
    return Head(w.astype(np.float64), float(clf.intercept_[0] - np.dot(w, mu)), c)


def train_set(feats, r: Recipe, idx, y, groups):
    x = np.concatenate([design(feats, r, v, idx) for v in r.train_views])
    yy = np.concatenate([y[idx]] * len(r.train_views))
    gg = np.concatenate([groups[idx]] * len(r.train_views))
    return x, yy, sample_weights(yy, gg, r.weighting)


def test_logit(feats, r: Recipe, head: Head, idx) -> np.ndarray:
    return np.mean([head.logit(design(feats, r, v, idx)) for v in r.test_views], axis=0)


def choose_c(feats, r: Recipe, y, groups, idx, inner_folds: np.ndarray) -> float:
    """C by an inner donor-grouped CV on the training folds only: the weighted log-loss (the recipe's own
    weighting) of the held-out donors' test-view logits."""
    losses = dict.fromkeys(C_GRID, 0.0)
    for k in sorted(set(inner_folds.tolist())):
        a, v = idx[inner_folds != k], idx[inner_folds == k]
        x, yy, ww = train_set(feats, r, a, y, groups)
        wv = sample_weights(y[v], groups[v], r.weighting)
        for c in C_GRID:
            z = test_logit(feats, r, fit_head(x, yy, ww, c), v)
            p = np.clip(1 / (1 + np.exp(-z)), 1e-6, 1 - 1e-6)
            losses[c] += float(-np.sum(wv * (y[v] * np.log(p) + (1 - y[v]) * np.log(1 - p))) / wv.sum())
    return min(losses, key=losses.get)


def inner_folds(groups: np.ndarray, y: np.ndarray, n: int = 3) -> np.ndarray:
    """Deterministic donor-grouped inner folds: donors of each class, largest first, dealt round the folds."""
    out = np.zeros(len(groups), np.int8)
    for c in (0, 1):
        subs = sorted(
            {s for s, t in zip(groups.tolist(), y.tolist()) if t == c}, key=lambda s: (-(groups == s).sum(), s)
        )
        for j, s in enumerate(subs):
            out[groups == s] = j % n
    return out


def area_logit(area: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    """The size-only baseline: a class-weighted logistic regression on log(cell area), fitted on ``tr``."""
    from sklearn.linear_model import LogisticRegression

    x = np.log(np.clip(area, 1e-4, None))[:, None]
    clf = LogisticRegression(class_weight="balanced").fit(x[tr], y[tr])
    return clf.decision_function(x[te])


def cross_validate(feats, r: Recipe, y, subjects, folds, area=None, log=print) -> dict:
    """Out-of-fold logits of recipe ``r`` on the fold file's folds (and the C chosen in each fold)."""
    y = np.asarray(y).astype(int)
    groups = np.asarray(subjects)
    z = np.zeros(len(y))
    cs = []
    for k in sorted(set(folds.tolist())):
        tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        if r.arch == "area":
            z[te] = area_logit(area, y, tr, te)
            continue
        c = choose_c(feats, r, y, groups, tr, inner_folds(groups[tr], y[tr]))
        x, yy, ww = train_set(feats, r, tr, y, groups)
        z[te] = test_logit(feats, r, fit_head(x, yy, ww, c), te)
        cs.append(c)
        log(f"  {r.name} fold {k}: C={c}")
    return {"logits": z, "C": cs}


def refit(feats, r: Recipe, y, subjects, cs: list[float]) -> Head:
    """The shipped head: all subjects, the C chosen most often across folds (the smaller on a tie)."""
    from collections import Counter

    counts = Counter(cs)
    c = min(counts, key=lambda v: (-counts[v], v))
    idx = np.arange(len(y))
    x, yy, ww = train_set(feats, r, idx, np.asarray(y).astype(int), np.asarray(subjects))
    return fit_head(x, yy, ww, c)
