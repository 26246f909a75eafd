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
from .scaffold import fold_splits, out_of_fold

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
    size_adjust: bool = False  # remove what the cell's size explains within each class (:func:`size_slopes`)
    bagged: bool = False  # the average of the heads fitted without each inner fold, instead of one refit

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: Key of the per-cell log cell area (share of the input window) in a backbone's feature dict.
LOG_AREA = "log_area"


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
    """A standardised L2 logistic regression, stored as (w, b) on the raw features, plus ``size_w`` times the cell's
    log area for a size-adjusted recipe."""

    w: np.ndarray
    b: float
    C: float
    size_w: float = 0.0

    def logit(self, x: np.ndarray, log_area: np.ndarray | None = None) -> np.ndarray:
        z = x @ self.w + self.b
        return z + self.size_w * log_area if self.size_w else z


def size_slopes(x: np.ndarray, log_area: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Per feature, the slope on log cell area pooled within each class (so the class difference itself is kept),
    and the mean log area.  Subtracting ``slope * (log_area - mean)`` makes a large healthy cell's features those
    of an average-sized healthy cell, as far as a linear trend can: what comes with size (texture scale, the
    nucleus-to-cytoplasm ratio) is taken out, not only the area."""
    num = np.zeros(x.shape[1])
    den = 0.0
    for c in (0, 1):
        sel = y == c
        da = log_area[sel] - log_area[sel].mean()
        num += da @ (x[sel] - x[sel].mean(0))
        den += float(da @ da)
    return num / max(den, 1e-12), float(log_area.mean())


#: Standardised features are projected on their first principal components before the logistic regression: a
#: cheaper fit (the comparison fits thousands of heads on 2 cores) and a mild extra regulariser.  The composition
#: is still one linear map of the raw features.
PCA_COMPONENTS = 256


def fit_heads(x: np.ndarray, y: np.ndarray, weights: np.ndarray, cs, components: int = PCA_COMPONENTS) -> list[Head]:
    """One L2 logistic regression per C in ``cs`` (sample ``weights``) on standardised features reduced by one PCA
    (fitted on ``x``, shared by every C); each returned as (w, b) on the raw features."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    k = min(components, xs.shape[1], xs.shape[0] - 1)
    pca = PCA(n_components=k, svd_solver="randomized" if k < xs.shape[1] else "full", random_state=0).fit(xs)
    xp = pca.transform(xs)
    heads = []
    clf = LogisticRegression(max_iter=3000, tol=1e-4, warm_start=True)
    for c in sorted(cs):  # warm start from the previous, more regularised solution
        clf.set_params(C=c)
        clf.fit(xp, y, sample_weight=weights)
        ws = pca.components_.T @ clf.coef_[0]  # on the standardised features
        w = ws / sd
        heads.append(Head(w.astype(np.float64), float(clf.intercept_[0] - np.dot(ws, pca.mean_) - np.dot(w, mu)), c))
    order = {c: h for c, h in zip(sorted(cs), heads)}
    return [order[c] for c in cs]


def fit_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float, components: int = PCA_COMPONENTS) -> Head:
    """:func:`fit_heads` for one C."""
    return fit_heads(x, y, weights, [c], components)[0]


def heads_for(feats, r: Recipe, idx, y, groups, cs) -> list[Head]:
    """Heads (one per C) fitted on the cells ``idx`` with the recipe's views, weighting and size adjustment."""
    x, yy, ww = train_set(feats, r, idx, y, groups)
    if not r.size_adjust:
        return fit_heads(x, yy, ww, cs)
    la = feats[LOG_AREA][idx]
    slope, mean = size_slopes(design(feats, r, "d0", idx), la, y[idx])
    x = x - np.outer(np.concatenate([la] * len(r.train_views)) - mean, slope)
    out = []
    for h in fit_heads(x, yy, ww, cs):
        k = float(h.w @ slope)
        out.append(Head(h.w, h.b + k * mean, h.C, -k))
    return out


def train_set(feats, r: Recipe, idx, y, groups):
    x = np.concatenate([design(feats, r, v, idx) for v in r.train_views])
    yy = np.concatenate([y[idx]] * len(r.train_views))
    gg = np.concatenate([groups[idx]] * len(r.train_views))
    return x, yy, sample_weights(yy, gg, r.weighting)


def test_logit(feats, r: Recipe, head: Head, idx) -> np.ndarray:
    la = feats[LOG_AREA][idx] if head.size_w else None
    return np.mean([head.logit(design(feats, r, v, idx), la) for v in r.test_views], axis=0)


def choose_c(feats, r: Recipe, y, groups, idx, inner_folds: np.ndarray) -> float:
    """C by an inner donor-grouped CV on the training folds only: the weighted log-loss (the recipe's own
    weighting) of the held-out donors' test-view logits."""
    losses = dict.fromkeys(C_GRID, 0.0)
    for k in sorted(set(inner_folds.tolist())):
        a, v = idx[inner_folds != k], idx[inner_folds == k]
        wv = sample_weights(y[v], groups[v], r.weighting)
        for c, head in zip(C_GRID, heads_for(feats, r, a, y, groups, C_GRID)):
            z = test_logit(feats, r, head, v)
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

    def fit(k: int, tr: np.ndarray, te: np.ndarray):
        if r.arch == "area":
            return area_logit(area, y, tr, te), None
        inner = inner_folds(groups[tr], y[tr])
        c = choose_c(feats, r, y, groups, tr, inner)
        head = bag(feats, r, y, groups, tr, inner, c) if r.bagged else heads_for(feats, r, tr, y, groups, [c])[0]
        log(f"  {r.name} fold {k}: C={c}")
        return test_logit(feats, r, head, te), c

    z, cs = out_of_fold(len(y), fold_splits(folds), fit)
    return {"logits": z, "C": cs}


def bag(feats, r: Recipe, y, groups, idx, inner: np.ndarray, c: float) -> Head:
    """The average of the heads fitted on ``idx`` without each of its ``inner`` folds (C-NMC's best entries averaged
    fold models); for linear heads the average of the logits is the logit of the averaged weights."""
    heads = [heads_for(feats, r, idx[inner != k], y, groups, [c])[0] for k in sorted(set(inner.tolist()))]
    return Head(
        np.mean([h.w for h in heads], axis=0),
        float(np.mean([h.b for h in heads])),
        c,
        float(np.mean([h.size_w for h in heads])),
    )


def refit(feats, r: Recipe, y, subjects, cs: list[float]) -> Head:
    """The shipped head: all subjects, the C chosen most often across folds (the smaller on a tie)."""
    from collections import Counter

    counts = Counter(cs)
    c = min(counts, key=lambda v: (-counts[v], v))
    idx = np.arange(len(y))
    y, groups = np.asarray(y).astype(int), np.asarray(subjects)
    if r.bagged:  # the same averaging over donor-grouped folds of every subject
        return bag(feats, r, y, groups, idx, inner_folds(groups, y, 5), c)
    return heads_for(feats, r, idx, y, groups, [c])[0]
