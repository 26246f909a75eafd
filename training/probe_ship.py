"""``leukoscan-train probe-fit``: a recipe of the cross-validation table refitted on every subject, as a run folder
that ``leukoscan-train export`` turns into ONNX + card.

The run folder holds what export reads: ``final.keras`` (the ImageNet trunk, its pools and the linear head as one
network taking 0-255 RGB), ``oof.npz`` (the recipe's out-of-fold logits from ``cv``: calibration, threshold and
every number on the card come from them, never from the refit) and ``metrics.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import donor_cv, provenance
from .probe import BACKBONES, POOLS, PooledCam, SizeTerm, pooled_trunk
from .probe_cv import LOG_AREA, Head, Recipe, design, refit
from .scaffold import write_run


def full_weights(r: Recipe, head: Head, feats_d0: dict) -> np.ndarray:
    """The head's weights laid over every pool of every layer (zeros for the pools the recipe does not use), in
    the order the trunk concatenates them."""
    parts, off = [], 0
    for ln in r.layers:
        c = feats_d0[ln].shape[1] // len(POOLS)
        full = np.zeros(len(POOLS) * c)
        for p in r.pools:
            j = POOLS.index(p)
            full[j * c : (j + 1) * c] = head.w[off : off + c]
            off += c
        parts.append(full)
    assert off == len(head.w)
    return np.concatenate(parts)


def shipped_network(r: Recipe, weights: str | None, w: np.ndarray, b: float, size_w: float = 0.0):
    """0-255 RGB -> trunk -> pools of ``r.layers`` -> [one logit, its class-activation map]; a size-adjusted head
    adds ``size_w * log(cell area)`` to both (the map gets it as a constant, so it still averages to the logit)."""
    from .models import keras

    bb = BACKBONES[r.arch]
    trunk = pooled_trunk(bb, weights, r.layers, maps=True)
    inp = keras.Input((bb.size, bb.size, 3), name="image")
    pooled, fmaps, masks = trunk(inp)
    feat = keras.layers.Concatenate(name="pooled")(list(pooled)) if len(pooled) > 1 else pooled[0]
    dense = keras.layers.Dense(1, name="head_logit", dtype="float32")
    out = dense(feat)
    dense.set_weights([w.reshape(-1, 1).astype(np.float32), np.asarray([b], np.float32)])
    cam_layer = PooledCam(tuple(int(f.shape[-1]) for f in fmaps), name="head_cam")
    cam = cam_layer(list(fmaps), list(masks))
    cam_layer.set_weights([w.astype(np.float32), np.asarray(b, np.float32)])
    if size_w:
        size = SizeTerm(size_w, name="size_term")(inp)
        out = keras.layers.Add(name="logit_with_size")([out, size])
        cam = keras.layers.Add(name="cam_with_size")([cam, keras.layers.Reshape((1, 1))(size)])
    return keras.Model(inp, [out, cam], name=f"{bb.arch}_leukoscan")


def area_baseline_block(results: dict) -> dict:
    """The card's ``held_out.cell_area_baseline`` (drawn as ticks beside each donor's bar) from the cv table's
    "cell area alone" row, cross-fitted like the card's own per-donor numbers, on the same folds."""
    from .metrics import donor_summary

    row = next(x for x in results["rows"] if x["recipe"]["arch"] == "area")
    per = {s: {"class": d["class"], "accuracy": d["share_right"]} for s, d in row["cross_fitted"]["donors"].items()}
    donors = donor_summary(per)
    return {
        "rule": "ALL when the cell is large: a class-weighted logistic regression on log cell area fitted on the "
        "other folds' donors; calibration and balanced-accuracy threshold cross-fitted between folds",
        "auroc": row["at_oof_threshold"]["auroc"],
        "donors": donors,
    }


def views_evidence_block(results: dict, shipped_views: int) -> dict:
    """The card's ``test_time_views`` (issue 29 item 2): every recipe of the cv table beside its " +tta" twin (the
    mean logit of the identity and a rotated-flipped view), so the card says what a second view would add and what
    running ``shipped_views`` costs in accuracy; same folds, same scorer."""
    rows = {x["recipe"]["name"]: x for x in results["rows"]}

    def brief(row: dict) -> dict:
        a, c = row["at_oof_threshold"], row["cross_fitted"]
        return {
            "auroc": a["auroc"],
            "healthy_mean_cross_fitted": c["healthy"]["mean"],
            "all_mean_cross_fitted": c["all_patients"]["mean"],
        }

    pairs = [
        {"recipe": name, "one_view": brief(rows[name]), "two_views": brief(rows[name + " +tta"])}
        for name in rows
        if name + " +tta" in rows
    ]
    gains = [p["two_views"]["auroc"] - p["one_view"]["auroc"] for p in pairs]
    return {
        "shipped_views": shipped_views,
        "combine": "mean logit over views; each view is one more network run per cell",
        "pairs": pairs,
        "second_view_auroc_gain": [round(min(gains), 4), round(max(gains), 4)] if gains else [],
        "evidence": "donor-level cross-validation over all subjects (docs/runs/4.0/cv), the table's recipes with "
        "and without a second test-time view",
    }


def oof_file(cv_dir: Path, r: Recipe) -> Path:
    return cv_dir / "oof" / (r.name.replace(" ", "_").replace("+", "p").replace(",", "") + ".npz")


def make_run(
    r: Recipe, m, feats: dict, px, cv_dir: Path, run_dir: Path, weights, log=print, fold_file: Path = donor_cv.FOLD_FILE
) -> Path:
    t0 = time.time()
    run_dir.mkdir(parents=True, exist_ok=True)
    y = m.labels.astype(int)
    subjects = list(m.subjects)
    d = np.load(oof_file(cv_dir, r))
    z, cs, folds = d["logits"].astype(np.float64), d["C"].tolist(), d["folds"]
    if not np.array_equal(folds, donor_cv.load_folds(subjects, fold_file)):
        raise RuntimeError(f"{oof_file(cv_dir, r)} was made on other folds than {fold_file}; rerun cv")
    head = refit(feats, r, y, subjects, cs)
    w = full_weights(r, head, feats["d0"])
    model = shipped_network(r, weights, w, head.b, head.size_w)
    # the network computes the head on the features it was fitted on (identity view, a spread of cells)
    idx = np.linspace(0, len(y) - 1, 24).round().astype(int)
    got = np.asarray(model.predict(np.asarray(px[idx], np.float32), verbose=0)[0])[:, 0]
    want = head.logit(design(feats, r, "d0", idx), feats[LOG_AREA][idx] if head.size_w else None)
    gap = float(np.max(np.abs(got - want)))
    log(f"network vs head on cached features: max |logit difference| {gap:.2e} (24 cells)")
    if gap > 1e-2:
        raise RuntimeError(f"the shipped network does not reproduce the fitted head (max |dz| {gap:.3g})")
    results = json.loads((cv_dir / "results.json").read_text())
    row = next(x for x in results["rows"] if x["recipe"]["name"] == r.name)
    bb = BACKBONES[r.arch]
    tta = [int(v[1:]) for v in r.test_views]
    n_subj = len(set(subjects))
    metrics = {
        "arch": BACKBONES[r.arch].arch,
        "recipe_kind": f"frozen ImageNet {r.arch} ({', '.join(r.layers)}), {'+'.join(r.pools)} pooled, linear head "
        f"({r.weighting}-balanced" + (", HED stain-jittered training views" if len(r.train_views) > 1 else "") + ")",
        "validation": f"donor-level {len(set(folds.tolist()))}-fold cross-validation over all {n_subj} subjects "
        f"(fold file {Path(fold_file).name}): out-of-fold predictions for every cell, each from a head that never "
        "saw that donor; calibration and threshold cross-fitted between folds",
        "calibration": {
            "threshold_rule_id": "balanced_accuracy",
            "threshold_rule": "maximises balanced accuracy of the calibrated out-of-fold P(ALL) (prevalence-free)",
        },
        "donor_cv": {
            "recipe": r.name,
            "selection_rule": donor_cv.SELECTION_RULE,
            "large_celled_healthy": list(donor_cv.LARGE_CELLED),
            "at_oof_threshold": row["at_oof_threshold"],
            "cross_fitted": {k: v for k, v in row["cross_fitted"].items() if k != "donors"},
            "per_fold": row["per_fold"],
        },
        "head_C": head.C,
        "head_C_per_fold": cs,
        "epochs_chosen": 0,
        "mean_fold_weighted_f1_by_epoch": [],
        "folds": [{"fold": f["fold"], "auroc": f["auroc"]} for f in row["per_fold"]],
        "recipe": r.to_dict(),
        "test_time_augmentation": {"views": tta, "combine": "mean_logit"},
        "weights": str(weights),
        "preprocessing": {"height": bb.size, "width": bb.size, "crop_fraction": bb.crop, "resize_filter": "bilinear"},
        "timing_s": {"refit_and_build": round(time.time() - t0, 1)},
        "data": m.summary(),
        "donors_cross_fitted": {},
        "cell_area_baseline": area_baseline_block(results),
        "test_time_views": views_evidence_block(results, len(tta)),
        "oof_cross_fitted": {},  # filled by export (recalibrate_run) from oof.npz
        "provenance": provenance.record(r.name),
    }
    write_run(run_dir, model, m, np.arange(len(y)), z, y, folds, metrics)
    log(f"wrote {run_dir} (head C={head.C}, {len(w)} weights)")
    return run_dir
