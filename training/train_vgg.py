"""``leukoscan-train train --arch vgg19``: VGG19 (Keras, no BatchNorm, as published) + GAP head.

No ImageNet VGG19 weights exist offline, so by default it is trained from scratch: small input (chosen by measured
throughput), dihedral flips/rotations + brightness/contrast jitter, class weights, cosine learning rate with
warm-up, optional knowledge distillation from an InceptionV3 teacher, a checkpoint every epoch and ``--resume``.

Validation: one subject-held-out fold (the same subject folds as the InceptionV3 run; a full cross-validation is
unaffordable on 2 CPU cores).  The teacher for distillation is the InceptionV3 model of that same fold, i.e. a
model that never saw the held-out subjects either; its predictions on the VGG training cells are the soft targets.
The shipped VGG19 is the model trained on the other folds (no refit), selected by validation weighted F1.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.preprocess import Preprocessing

from .data import Manifest, build_pixel_cache, check_no_leak, subject_folds
from .files import save_held_out, save_npy, saving
from .metrics import (
    held_out_fold,
    plot_all,
    weighted_f1,
    write_json,
)
from .models import dihedral, keras, strategy, tf, vgg19_model
from .progress import Progress


@dataclass
class VggRecipe:
    size: int = 64
    epochs: int = 12
    batch: int = 32
    lr: float = 2e-4
    warmup_epochs: float = 1.0
    dropout: float = 0.3
    distill: float = 0.5  # weight of the teacher's soft targets (0 = hard labels only)
    val_fold: int = 1
    n_folds: int = 5
    seed: int = 0
    jitter: float = 0.1  # brightness/contrast jitter amplitude
    tta_views: tuple[int, ...] = (0,)  # dihedral views averaged (mean logit) at validation and in the app


def augment(x: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """Random dihedral transform per cell + brightness/contrast jitter (the black background stays black)."""
    out = np.empty(x.shape, np.float32)
    ks = rng.integers(0, 8, len(x))
    for k in range(8):
        sel = np.flatnonzero(ks == k)
        if sel.size:
            out[sel] = dihedral(x[sel].astype(np.float32), k)
    if jitter > 0:
        c = rng.uniform(1 - jitter, 1 + jitter, (len(x), 1, 1, 1)).astype(np.float32)
        b = rng.uniform(-jitter, jitter, (len(x), 1, 1, 1)).astype(np.float32) * 255 * 0.2
        fg = out.max(axis=3, keepdims=True) > 10
        out = np.where(fg, np.clip(out * c + b, 0, 255), out)
    return out


def teacher_targets(teacher_dir: Path, m: Manifest, fold: int) -> np.ndarray:
    """Calibrated P(ALL) of the teacher run's fold-``fold`` model on every cell (NaN where unavailable)."""
    d = np.load(teacher_dir / "teacher_fold.npz")
    if int(d["fold"]) != fold:
        raise ValueError(f"teacher predictions are for fold {int(d['fold'])}, not {fold}")
    paths = {p: i for i, p in enumerate(d["paths"].tolist())}
    out = np.full(len(m), np.nan, np.float32)
    for i, p in enumerate(m.paths):
        j = paths.get(p)
        if j is not None:
            out[i] = d["p_all"][j]
    return out


def training_checkpoint(model, opt) -> tf.train.Checkpoint:
    """Model + optimiser + epoch counter.  Keras 3 optimisers create their slot variables lazily: build them first
    so that ``--resume`` restores Adam's moments and step count instead of silently restarting them at zero."""
    opt.build(model.trainable_variables)
    return tf.train.Checkpoint(model=model, opt=opt, epoch=tf.Variable(0))


def run(
    m: Manifest,
    spec: Preprocessing,
    r: VggRecipe,
    weights,
    run_dir: Path,
    cache: Path,
    teacher_dir: Path | None,
    resume: bool,
    log=print,
    workers: int = 2,
) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    y = m.labels.astype(np.int64)
    subjects = np.asarray(m.subjects)
    folds = subject_folds(m, r.n_folds, r.seed)
    tr, va = folds[r.val_fold]
    check_no_leak(m, tr, va)
    log(
        f"VGG19 {r.size}px: {len(tr)} training cells, {len(va)} validation cells "
        f"(held-out subjects {sorted(set(subjects[va].tolist()))})"
    )
    px = build_pixel_cache(m, spec, cache, workers=workers)
    x_va = np.asarray(px[va], np.float32)

    soft = None
    if teacher_dir is not None and r.distill > 0:
        soft = teacher_targets(teacher_dir, m, r.val_fold)
        if np.isnan(soft[tr]).any():
            raise ValueError("teacher has no prediction for some training cells")
        log(f"distilling from {teacher_dir} (weight {r.distill})")

    keras.utils.set_random_seed(r.seed)
    with strategy().scope():
        model = vgg19_model(r.size, weights, r.dropout)
        steps_per_epoch = len(tr) // r.batch
        total = steps_per_epoch * r.epochs
        warm = int(r.warmup_epochs * steps_per_epoch)
        sched = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=r.lr * 0.01 if warm else r.lr,
            decay_steps=max(total - warm, 1),
            alpha=0.01,
            warmup_target=r.lr if warm else None,
            warmup_steps=warm,
        )
        opt = keras.optimizers.Adam(learning_rate=sched)
    n_pos, n_neg = int(y[tr].sum()), int(len(tr) - y[tr].sum())
    cw = {1: len(tr) / (2 * n_pos), 0: len(tr) / (2 * n_neg)}
    a = float(r.distill if soft is not None else 0.0)

    @tf.function(reduce_retracing=True)
    def step(x, t, s, w):
        with tf.GradientTape() as tape:
            z = model(x, training=True)[:, 0]
            hard = tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z)
            dist = tf.nn.sigmoid_cross_entropy_with_logits(labels=s, logits=z)
            loss = tf.reduce_sum(w * ((1 - a) * hard + a * dist)) / tf.reduce_sum(w)
        g = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(g, model.trainable_variables))
        return loss

    infer = tf.function(lambda x: model(x, training=False)[:, 0], reduce_retracing=True)

    def predict(x):
        """Mean logit over the test-time views, as the engine scores a cell with this model's card."""
        zs = [
            np.concatenate([infer(tf.constant(dihedral(x[i : i + 128], k))).numpy() for i in range(0, len(x), 128)])
            for k in r.tta_views
        ]
        return np.mean(zs, axis=0)

    ckpt = training_checkpoint(model, opt)
    manager = tf.train.CheckpointManager(ckpt, str(run_dir / "ckpt"), max_to_keep=2)
    hist = {"loss": [], "val_weighted_f1": [], "val_auroc": [], "seconds": []}
    best = {"f1": -1.0, "epoch": 0}
    if resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        if (run_dir / "history.json").exists():
            saved = json.loads((run_dir / "history.json").read_text())
            hist = saved["vgg19"]
            best = saved["best"]
            if tuple(saved.get("tta_views", [0])) != tuple(r.tta_views):
                # earlier epochs were scored on other views: their F1 is not comparable, start the best-epoch
                # selection afresh
                log(
                    f"test-time views changed from {saved.get('tta_views', [0])} to {list(r.tta_views)}: "
                    "best-epoch selection restarts"
                )
                best = {"f1": -1.0, "epoch": 0}
        log(f"resumed from {manager.latest_checkpoint} (epoch {int(ckpt.epoch)})")
    rng = np.random.default_rng(r.seed + int(ckpt.epoch))
    from sklearn.metrics import roc_auc_score

    for ep in range(int(ckpt.epoch) + 1, r.epochs + 1):
        t0 = time.time()
        order = rng.permutation(tr)
        losses = []
        progress = Progress(steps_per_epoch, f"epoch {ep}/{r.epochs}", per_step=r.batch)
        for i in range(0, steps_per_epoch * r.batch, r.batch):
            idx = np.sort(order[i : i + r.batch])
            x = augment(np.asarray(px[idx]), rng, r.jitter)
            t = y[idx].astype(np.float32)
            s = soft[idx] if soft is not None else t
            w = np.where(t == 1, cw[1], cw[0]).astype(np.float32)
            losses.append(
                float(step(tf.constant(x), tf.constant(t), tf.constant(s.astype(np.float32)), tf.constant(w)))
            )
            progress.update(1, loss=float(np.mean(losses)))
        progress.close()
        z = predict(x_va)
        f1 = weighted_f1(y[va], (z >= 0).astype(int))
        hist["loss"].append(float(np.mean(losses)))
        hist["val_weighted_f1"].append(f1)
        hist["val_auroc"].append(float(roc_auc_score(y[va], z)))
        hist["seconds"].append(time.time() - t0)
        ckpt.epoch.assign(ep)
        manager.save()
        if f1 > best["f1"]:
            best = {"f1": f1, "epoch": ep}
            with saving(run_dir / "final.keras") as tmp:
                model.save(tmp)
            save_npy(run_dir / "val_logits.npy", z)
        write_json(run_dir / "history.json", {"vgg19": hist, "best": best, "tta_views": list(r.tta_views)})
        log(
            f"epoch {ep}/{r.epochs}: loss {hist['loss'][-1]:.4f} val weighted F1 {f1:.4f} "
            f"AUROC {hist['val_auroc'][-1]:.4f} ({hist['seconds'][-1]:.0f}s)"
        )
    return finalize(m, r, spec, run_dir, folds, hist, best, weights, time.time() - t_start, teacher_dir)


def finalize(m, r, spec, run_dir, folds, hist, best, weights, seconds, teacher_dir) -> dict:
    y = m.labels.astype(np.int64)
    tr, va = folds[r.val_fold]
    z = np.load(run_dir / "val_logits.npy")
    yv = y[va]
    sv = [m.subjects[i] for i in va]
    fold = held_out_fold(z, yv, sv, r.seed, r.val_fold)
    halves, p, calib, th = fold["halves"], fold["p"], fold["calibration"], fold["calibration"]["threshold"]
    at_ship = fold["at_ship"]
    save_held_out(run_dir, m, va, z, yv, halves)
    metrics = {
        "arch": "vgg19",
        "validation": fold["validation"],
        "validation_cross_fitted": fold["honest"],
        "validation_at_shipped_operating_point": at_ship,
        "best_epoch": best["epoch"],
        "calibration": calib,
        "recipe": asdict(r),
        "test_time_augmentation": {"views": list(r.tta_views), "combine": "mean_logit"},
        "weights": weights or "none (random initialisation)",
        "teacher": str(teacher_dir) if teacher_dir else None,
        "preprocessing": {"height": spec.height, "width": spec.width, **spec.to_dict()},
        "train_subjects": sorted(set(np.asarray(m.subjects)[tr])),
        "val_subjects": sorted(set(sv)),
        "timing_s": {"total": seconds, "per_epoch": hist["seconds"]},
        "data": m.summary(),
    }
    write_json(run_dir / "metrics.json", metrics)
    plot_all(run_dir, "vgg19", p, yv, th, {"VGG19": hist}, f"VGG19, held-out fold ({len(set(sv))} subjects)")
    return metrics
