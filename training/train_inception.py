"""``leukoscan-train train --arch inceptionv3``: features -> phase 1 CV -> phase 2 CV -> refit on all subjects."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.preprocess import Preprocessing

from . import features
from .data import Manifest, build_pixel_cache, fold_ids, subject_folds
from .files import save_held_out, save_npz, saving, write_text
from .inception import InceptionTrainer, Recipe, fit_head
from .metrics import (
    REVIEW_RULE,
    best_threshold,
    calibrated,
    compute,
    compute_cross_fitted,
    fit_platt,
    fit_temperature,
    plot_all,
    review_margin,
    sigmoid,
    write_json,
)
from .models import keras, tf

TEACHER_FOLD = 1  # the fold a VGG19 is held out on (fold 1: 4 HEM + 5 ALL subjects with seed 0)


def _tag(recipe: Recipe, crop: float, weights: str | None, m: Manifest) -> str:
    wkey = (
        "rand"
        if not weights
        else ("imnet" if weights == "imagenet" else hashlib.sha256(Path(weights).name.encode()).hexdigest()[:6])
    )
    digest = hashlib.sha256("\n".join(m.hashes).encode()).hexdigest()[:8]
    return f"inc{recipe.size}c{round(crop * 100)}_{wkey}_{digest}"


def derive(feats: dict[int, np.ndarray], base, src: str, dst: str, cache: Path, tag: str, log) -> dict[int, np.ndarray]:
    """Frozen forward from cached ``src`` activations to ``dst`` (cached as float16)."""
    sub = keras.Model(base.get_layer(src).output, base.get_layer(dst).output)
    f = tf.function(lambda x: sub(tf.cast(x, tf.float32), training=False), reduce_retracing=True)
    out = {}
    for v, a in feats.items():
        npy, done = features.feature_paths(cache, tag, dst, v)
        if not done.exists():
            t0 = time.time()
            shape = (len(a),) + tuple(int(d) for d in sub.output.shape[1:])
            mm = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float16, shape=shape)
            for i in range(0, len(a), 128):
                mm[i : i + 128] = f(tf.constant(np.asarray(a[i : i + 128]))).numpy().astype(np.float16)
            mm.flush()
            del mm
            write_text(done, "{}")  # the .npy above counts as written once this marker exists
            log(f"derived {dst} view {v} in {time.time() - t0:.0f}s")
        out[v] = np.load(npy)
    return out


def run(
    m: Manifest,
    spec: Preprocessing,
    recipe: Recipe,
    weights: str | None,
    run_dir: Path,
    cache: Path,
    n_folds: int,
    resume: bool,
    log=print,
    workers: int = 2,
) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    y = m.labels.astype(np.int64)
    subjects = np.asarray(m.subjects)
    folds = subject_folds(m, n_folds, recipe.seed)
    fid = fold_ids(m, folds)
    log(f"{len(m)} cells, {len(set(m.subjects))} subjects, {n_folds} subject-wise folds (seed {recipe.seed}), no leaks")

    pixels = build_pixel_cache(m, spec, cache, workers=workers)
    tag = _tag(recipe, spec.crop_fraction, weights, m)
    if recipe.views[0] != 0:
        raise ValueError("the first view must be 0 (identity): validation uses it")
    t0 = time.time()
    f8 = features.extract(pixels, recipe.size, weights, ["mixed8"], recipe.views, cache, tag, log=log)
    f8 = {v: f8[("mixed8", v)] for v in recipe.views}
    t_feat = time.time() - t0

    trainer = InceptionTrainer(recipe, weights, log=log)
    feats = f8 if recipe.cut == "mixed8" else derive(f8, trainer.base, "mixed8", recipe.cut, cache, tag, log)
    pooled = {v: trainer.pooled(feats[v]) for v in recipe.views}

    tv = recipe.test_views
    # ---- phase 1: head on frozen features, C chosen by CV (OOF log-loss after temperature scaling)
    p1 = {}
    for c in (0.01, 0.1, 1.0):
        z = np.zeros(len(m), np.float32)
        for tr, va in folds:
            w, b = fit_head(pooled, y, tr, c, recipe.seed)
            z[va] = np.mean([pooled[v][va] @ w + b for v in tv], axis=0)
        t = fit_temperature(z, y)
        pz = sigmoid(z / t)
        nll = float(-np.mean(y * np.log(pz + 1e-12) + (1 - y) * np.log(1 - pz + 1e-12)))
        p1[c] = {"oof_logits": z, "nll": nll}
        log(f"phase 1 C={c}: OOF NLL {nll:.4f}")
    c_best = min(p1, key=lambda c: p1[c]["nll"])
    recipe.head_c = c_best
    phase1 = compute_cross_fitted(p1[c_best]["oof_logits"], y, fid, m.subjects)
    log(f"phase 1 (head only, C={c_best}): OOF weighted F1 {phase1['weighted_f1']:.4f} AUROC {phase1['auroc']:.4f}")

    # ---- phase 2 CV
    hist_all = {}
    val_logits = {}
    for k, (tr, va) in enumerate(folds):
        fp = run_dir / f"fold{k}.npz"
        if resume and fp.exists():
            d = np.load(fp)
            if (
                np.array_equal(d["val_idx"], va)
                and "views" in d
                and tuple(d["views"].tolist()) == tv
                and d["val_logits"].shape[0] >= recipe.epochs
            ):
                val_logits[k] = d["val_logits"][: recipe.epochs]
                hist_all[f"fold {k}"] = {"loss": d["loss"].tolist(), "val_weighted_f1": d["val_f1"].tolist()}
                log(f"fold {k}: reused {fp}")
                continue
        log(
            f"fold {k}: {len(tr)} training cells / {len(va)} validation cells "
            f"(validation subjects {sorted(set(subjects[va].tolist()))})"
        )
        trainer.reset()
        trainer.set_head(*fit_head(pooled, y, tr, c_best, recipe.seed))
        h = trainer.finetune(feats, y, tr, va, recipe.epochs)
        val_logits[k] = np.stack(h["val_logits"])
        save_npz(
            fp,
            val_idx=va,
            views=np.array(tv),
            val_logits=val_logits[k],
            loss=np.array(h["loss"]),
            val_f1=np.array(h["val_weighted_f1"]),
        )
        hist_all[f"fold {k}"] = {"loss": h["loss"], "val_weighted_f1": h["val_weighted_f1"]}
        if k == TEACHER_FOLD:
            # Distillation targets for a VGG19 held out on the same fold: this model never saw fold k's subjects.
            # Fixed distillation temperature 2 (not fitted on any validation labels).
            z_all = np.mean([trainer.logits(np.asarray(feats[v])) for v in tv], axis=0)
            save_npz(
                run_dir / "teacher_fold.npz",
                fold=k,
                paths=np.asarray(m.paths),
                p_all=sigmoid(z_all / 2.0),
                epochs=len(h["loss"]),
            )

    f1_by_epoch = np.array([hist_all[f"fold {k}"]["val_weighted_f1"][: recipe.epochs] for k in range(n_folds)])
    mean_f1 = f1_by_epoch.mean(0)
    e_best = int(np.argmax(mean_f1)) + 1
    log(f"mean fold weighted F1 by epoch: {np.round(mean_f1, 4).tolist()} -> {e_best} epochs")
    oof = np.zeros(len(m), np.float32)
    single = np.zeros(len(m), np.float32)  # view 0 only: what test-time augmentation adds is reported
    for k, (_, va) in enumerate(folds):
        oof[va] = val_logits[k][e_best - 1].mean(0)  # mean logit over the test-time views
        single[va] = val_logits[k][e_best - 1][0]

    temperature, shift = fit_platt(oof, y)
    p = calibrated(oof, temperature, shift)
    threshold = best_threshold(p, y)
    margin = review_margin(p, y, threshold)
    honest = compute_cross_fitted(oof, y, fid, m.subjects)
    at_ship = compute(p, y, threshold, m.subjects, margin)
    log(
        f"phase 2 OOF (cross-fitted T/threshold): weighted F1 {honest['weighted_f1']:.4f} AUROC {honest['auroc']:.4f} "
        f"ECE {honest['ece']:.4f}"
    )

    single_view = compute_cross_fitted(single, y, fid, m.subjects)
    log(
        f"  without test-time augmentation (view 0 only): weighted F1 {single_view['weighted_f1']:.4f} "
        f"AUROC {single_view['auroc']:.4f}"
    )
    save_held_out(
        run_dir, m, np.arange(len(m)), oof, y, fid, logits_view0=single, phase1_logits=p1[c_best]["oof_logits"]
    )

    # ---- refit on all subjects with the CV-chosen recipe
    final_path = run_dir / "final.keras"
    if not (resume and final_path.exists()):
        log(f"refit on all {len(m)} cells: head C={c_best}, {e_best} fine-tuning epochs")
        trainer.reset()
        trainer.set_head(*fit_head(pooled, y, np.arange(len(m)), c_best, recipe.seed))
        h_final = trainer.finetune(feats, y, np.arange(len(m)), None, e_best)
        hist_all["final (all subjects)"] = {"loss": h_final["loss"]}
        with saving(final_path) as tmp:
            trainer.export_model().save(tmp)
        write_json(run_dir / "final_history.json", {"loss": h_final["loss"], "seconds": h_final["seconds"]})

    calib = {
        "temperature": temperature,
        "logit_shift": shift,
        "threshold": threshold,
        "review_margin": margin,
        "threshold_rule": "maximises weighted F1 of the calibrated out-of-fold P(ALL) (grid 0.05-0.95)",
        "review_margin_rule": REVIEW_RULE,
    }
    metrics = {
        "arch": "inceptionv3",
        "weights": weights or "none (random initialisation)",
        "validation": "out-of-fold predictions of a 5-fold cross-validation grouped by subject: every cell scored by "
        "a model that never saw its subject",
        "oof_cross_fitted": honest,
        "oof_at_shipped_operating_point": at_ship,
        "phase1_head_only_cross_fitted": phase1,
        "test_time_augmentation": {"views": list(tv), "combine": "mean_logit"},
        "oof_cross_fitted_without_tta": {k: single_view[k] for k in ("weighted_f1", "auroc", "ece")},
        "epochs_chosen": e_best,
        "mean_fold_weighted_f1_by_epoch": mean_f1.tolist(),
        "fold_weighted_f1_by_epoch": f1_by_epoch.tolist(),
        "phase1_c_nll": {str(c): p1[c]["nll"] for c in p1},
        "calibration": calib,
        "recipe": asdict(recipe),
        "preprocessing": {"height": spec.height, "width": spec.width, **spec.to_dict()},
        "folds": [
            {"fold": k, "val_subjects": sorted(set(subjects[va].tolist())), "n_val": int(len(va))}
            for k, (_, va) in enumerate(folds)
        ],
        "timing_s": {"features": t_feat, "total": time.time() - t_start},
        "data": m.summary(),
    }
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "history.json", hist_all)
    plot_all(run_dir, "inceptionv3", p, y, threshold, hist_all, "InceptionV3, out-of-fold (40 subjects)")
    return metrics
