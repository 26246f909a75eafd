"""What the frozen-feature recipes share around their heads: the fold loop that gives out-of-fold logits, and the
run folder that ``leukoscan-train export`` reads.

Both the 4.0 comparison (training/probe_cv.py, training/probe_ship.py) and VGG19 2.0 (training/frozen_vgg.py)
fit one head per fold on the other folds' subjects and ship a refit as a run folder; the loop and the folder are
written once here so that the two cannot drift apart (which fold a cell's logit comes from, which file marks a
run as complete).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import save_held_out, saving, write_json

Split = tuple[np.ndarray, np.ndarray]


def fold_splits(folds: np.ndarray) -> list[Split]:
    """(training cells, held-out cells) of each fold id in ``folds``, in fold order."""
    return [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in sorted(set(folds.tolist()))]


def out_of_fold(
    n: int, splits: Sequence[Split], fit_predict: Callable[[int, np.ndarray, np.ndarray], tuple[np.ndarray, Any]]
) -> tuple[np.ndarray, list]:
    """Out-of-fold logits of ``n`` cells: for fold ``k``, ``fit_predict(k, train, held_out)`` fits on ``train``
    only and returns (the held-out cells' logits, what it chose in that fold, e.g. C or None).  Returns the logits
    and the choices that are not None, in fold order."""
    z = np.zeros(n)
    covered = np.zeros(n, bool)
    chosen = []
    for k, (tr, te) in enumerate(splits):
        if np.intersect1d(tr, te).size:
            raise ValueError(f"fold {k}: a cell is both trained on and held out")
        z[te], c = fit_predict(k, tr, te)
        covered[te] = True
        if c is not None:
            chosen.append(c)
    if not covered.all():
        raise ValueError(f"{int((~covered).sum())} cells are in no held-out fold")
    return z, chosen


def write_run(run_dir: Path, model, m, idx: np.ndarray, logits: np.ndarray, labels, folds, metrics: dict) -> Path:
    """The run folder ``export`` reads: ``final.keras``, ``oof.npz`` (held-out logits of the cells ``idx`` with
    their fold) and ``metrics.json``, in that order: metrics.json is written last, so it marks a complete run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with saving(run_dir / "final.keras") as tmp:
        model.save(tmp)
    save_held_out(run_dir, m, idx, logits, labels, folds)
    write_json(run_dir / "metrics.json", metrics)
    return run_dir
