"""``leukoscan-train finetune``: InceptionV3 fine-tuned end to end on raw pixels with on-the-fly augmentation.

Why this recipe (docs/models.md, "2.0"): the cached-feature recipe of 1.x fine-tuned only the top block and did not
transfer to new donors (independent check: weighted F1 0.72, most healthy donors' cells called ALL).  Published
models that transfer fine-tune the whole network with strong augmentation.  Here:

- ImageNet InceptionV3 (offline copy), layers from ``unfreeze_from`` on trained (default: blocks mixed6-mixed10;
  ``"all"``: every layer);
- BatchNorm: below the cut frozen with the rest (ImageNet statistics, inference mode); from the cut up trained like
  the convolutions -- batch statistics in the training forward pass and moving statistics re-estimated on the
  (augmented) cell images by the usual moving average (momentum 0.99, ~1,000 steps per run), so the shipped
  network normalises with statistics of cell images, not of ImageNet photos (Keras 3 runs a trainable
  BatchNormalization in training mode whenever the model is called with ``training=True``);
- augmentation per cell and step (``training.layers.CellAugment``, the 3.0 recipe's without size equalisation): any rotation, mirror, zoom +-15%, shift, colour jitter,
  blur, noise -- variation between donors and acquisitions, not only orientation;
- class weights n / (2 n_c); Adam with layer-wise learning rates (backbone ``lr``, head ``head_lr``), warm-up then
  cosine decay; a FIXED number of epochs (no epoch is picked on the held-out donors);
- validation on one held-out subject fold with several healthy donors (the per-epoch held-out curve is recorded,
  not used for selection); test-time views as in the app;
- checkpoints every ``checkpoint_s`` seconds with the position inside the epoch: ``--resume`` continues mid-epoch.

The run folder has the layout ``leukoscan-train export`` reads (metrics.json, oof.npz, final.keras, history.json).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.preprocess import Preprocessing

from .data import Manifest, build_pixel_cache, check_no_leak, subject_folds
from .files import save_held_out, save_npz, saving
from .layers import RECIPE_2_AUGMENTATION, CellAugment, CellAugmentation
from .metrics import (
    compute_cross_fitted,
    held_out_fold,
    plot_all,
    run_facts,
    weighted_f1,
    write_json,
)
from .models import Normalize, dihedral, inception_base, keras, tf
from .progress import Progress


@dataclass
class FinetuneRecipe:
    size: int = 224
    # trained from this layer on, in Keras' layer order: "mixed5" (the block's concat) -> blocks mixed6-mixed10,
    # since a block's convolutions come before its concat layer; "all" = the whole network
    unfreeze_from: str = "mixed5"
    epochs: int = 5
    batch: int = 24
    lr: float = 1e-4  # backbone
    head_lr: float = 1e-3
    warmup_epochs: float = 0.3
    dropout: float = 0.3
    val_fold: int = 1
    n_folds: int = 5
    seed: int = 0
    tta_views: tuple[int, ...] = (0, 5, 2)
    checkpoint_s: float = 240.0
    augmentation: CellAugmentation = field(default_factory=lambda: RECIPE_2_AUGMENTATION)
    train_on_all: bool = False  # refit on every subject (no held-out fold; metrics come from an earlier run)


def build_model(r: FinetuneRecipe, weights: str | None) -> tuple[keras.Model, list, list]:
    """0-255 RGB -> Normalize -> InceptionV3 -> GAP -> dropout -> one logit.  Returns the model and its backbone /
    head trainable variables."""
    base = inception_base(r.size, weights)
    trained = r.unfreeze_from == "all"
    for layer in base.layers:
        if layer.name == r.unfreeze_from:
            trained = True
        layer.trainable = trained
    if not trained:
        raise ValueError(f"no layer named {r.unfreeze_from!r} in InceptionV3")
    inp = keras.Input((r.size, r.size, 3), name="image")
    x = Normalize("inception", name="normalize")(inp)
    x = base(x)  # BatchNorm from the cut up in training mode while training (see module docstring)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(r.dropout, name="head_dropout")(x)
    out = keras.layers.Dense(1, name="head_logit", dtype="float32")(x)
    model = keras.Model(inp, out, name="inceptionv3_leukoscan")
    head = model.get_layer("head_logit").trainable_variables
    backbone = [v for v in base.trainable_variables]
    return model, backbone, head


def _schedule(lr: float, total: int, warm: int):
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr * 0.01,
        decay_steps=max(total - warm, 1),
        alpha=0.01,
        warmup_target=lr,
        warmup_steps=max(warm, 1),
    )


def run(
    m: Manifest,
    spec: Preprocessing,
    r: FinetuneRecipe,
    weights,
    run_dir: Path,
    cache: Path,
    resume: bool,
    log=print,
    workers: int = 2,
) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    y = m.labels.astype(np.int64)
    subjects = np.asarray(m.subjects)
    folds = subject_folds(m, r.n_folds, r.seed)
    if r.train_on_all:
        tr, va = np.arange(len(m)), np.zeros(0, int)
    else:
        tr, va = folds[r.val_fold]
        check_no_leak(m, tr, va)
    log(
        f"InceptionV3 end to end from {r.unfreeze_from}, {r.size}px: {len(tr)} training cells, {len(va)} held-out "
        f"cells (held-out subjects {sorted(set(subjects[va].tolist()))})"
    )
    px = build_pixel_cache(m, spec, cache, workers=workers)

    keras.utils.set_random_seed(r.seed)
    model, backbone, head = build_model(r, weights)
    steps = len(tr) // r.batch
    total, warm = steps * r.epochs, int(r.warmup_epochs * steps)
    opt_b = keras.optimizers.Adam(_schedule(r.lr, total, warm))
    opt_h = keras.optimizers.Adam(_schedule(r.head_lr, total, warm))
    opt_b.build(backbone)
    opt_h.build(head)
    n_pos = int(y[tr].sum())
    cw = {1: len(tr) / (2 * n_pos), 0: len(tr) / (2 * (len(tr) - n_pos))}
    nb = len(backbone)
    aug = CellAugment(r.augmentation)

    @tf.function(reduce_retracing=True)
    def step(x, t, w):
        with tf.GradientTape() as tape:
            z = model(x, training=True)[:, 0]
            loss = tf.reduce_sum(w * tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z)) / tf.reduce_sum(w)
        g = tape.gradient(loss, backbone + head)
        opt_b.apply_gradients(zip(g[:nb], backbone))
        opt_h.apply_gradients(zip(g[nb:], head))
        return loss

    infer = tf.function(lambda x: model(x, training=False)[:, 0], reduce_retracing=True)

    def predict(idx, views):
        zs = []
        for k in views:
            parts = []
            for i in range(0, len(idx), 64):
                x = dihedral(np.asarray(px[np.sort(idx[i : i + 64])], np.float32), k)
                parts.append(infer(tf.constant(x)).numpy())
            zs.append(np.concatenate(parts))
        return np.mean(zs, axis=0)

    ckpt = tf.train.Checkpoint(model=model, opt_b=opt_b, opt_h=opt_h, epoch=tf.Variable(0), step=tf.Variable(0))
    manager = tf.train.CheckpointManager(ckpt, str(run_dir / "ckpt"), max_to_keep=2)
    hist = {"loss": [], "val_weighted_f1_view0": [], "val_auroc_view0": [], "seconds": []}
    if resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        if (run_dir / "history.json").exists():
            hist = json.loads((run_dir / "history.json").read_text())["inceptionv3"]
        log(f"resumed from {manager.latest_checkpoint} (epoch {int(ckpt.epoch)} done, step {int(ckpt.step)})")
    from sklearn.metrics import roc_auc_score

    va_sorted = np.sort(va)
    z0 = None  # the last epoch's held-out view-0 logits: the final model's, reused below
    last_save = time.time()
    for ep in range(int(ckpt.epoch) + 1, r.epochs + 1):
        t0 = time.time()
        order = np.random.default_rng(r.seed * 1000 + ep).permutation(tr)
        losses = []
        progress = Progress(steps, f"epoch {ep}/{r.epochs}", start=int(ckpt.step), per_step=r.batch)
        for s in range(int(ckpt.step), steps):
            idx = np.sort(order[s * r.batch : (s + 1) * r.batch])
            t = y[idx].astype(np.float32)
            w = np.where(t == 1, cw[1], cw[0]).astype(np.float32)
            # a seed per step: a resumed run replays the same views
            x = aug.augment(tf.constant(np.asarray(px[idx], np.float32)), seed=r.seed * 10**9 + ep * 100_000 + s)
            losses.append(float(step(x, tf.constant(t), tf.constant(w))))
            progress.update(1, loss=float(np.mean(losses)))
            if time.time() - last_save > r.checkpoint_s:
                ckpt.step.assign(s + 1)
                manager.save()
                last_save = time.time()
        progress.close()
        ckpt.epoch.assign(ep)
        ckpt.step.assign(0)
        hist["loss"].append(float(np.mean(losses)) if losses else float("nan"))
        if len(va):
            z0 = predict(va_sorted, (0,))
            hist["val_weighted_f1_view0"].append(weighted_f1(y[va_sorted], (z0 >= 0).astype(int)))
            hist["val_auroc_view0"].append(float(roc_auc_score(y[va_sorted], z0)))
        hist["seconds"].append(time.time() - t0)
        manager.save()
        last_save = time.time()
        write_json(run_dir / "history.json", {"inceptionv3": hist, "recipe": _recipe_dict(r)})
        log(
            f"epoch {ep}/{r.epochs}: loss {hist['loss'][-1]:.4f}"
            + (
                f", held-out view 0: weighted F1 {hist['val_weighted_f1_view0'][-1]:.4f} AUROC "
                f"{hist['val_auroc_view0'][-1]:.4f}"
                if len(va)
                else ""
            )
            + f" ({hist['seconds'][-1]:.0f}s)"
        )
    with saving(run_dir / "final.keras") as tmp:
        model.save(tmp)
    if not len(va):
        return {"run_dir": str(run_dir), "trained_on": "all subjects"}
    z_views = {k: z0 if k == 0 and z0 is not None else predict(va_sorted, (k,)) for k in r.tta_views}
    save_npz(run_dir / "val_logits_views.npz", **{str(k): v for k, v in z_views.items()})
    return finalize(m, r, spec, run_dir, va_sorted, tr, hist, weights, time.time() - t_start)


def _recipe_dict(r: FinetuneRecipe) -> dict:
    d = asdict(r)
    d["tta_views"] = list(r.tta_views)
    return d


def finalize(m, r, spec, run_dir, va, tr, hist, weights, seconds) -> dict:
    """Calibration, operating point and honest held-out metrics from the saved per-view logits (idempotent)."""
    y = m.labels.astype(np.int64)
    d = np.load(run_dir / "val_logits_views.npz")
    z = np.mean([d[str(k)] for k in r.tta_views], axis=0)
    yv = y[va]
    sv = [m.subjects[i] for i in va]
    fold = held_out_fold(z, yv, sv, r.seed, r.val_fold)
    halves, p, calib, th = fold["halves"], fold["p"], fold["calibration"], fold["calibration"]["threshold"]
    no_tta = compute_cross_fitted(d["0"], yv, halves, sv)
    save_held_out(run_dir, m, va, z, yv, halves)
    at_ship = fold["at_ship"]
    metrics = {
        "arch": "inceptionv3",
        "recipe_kind": "fine-tuning on raw pixels with on-the-fly augmentation",
        "validation": fold["validation"],
        "validation_cross_fitted": fold["honest"],
        "validation_cross_fitted_without_tta": {k: no_tta[k] for k in ("weighted_f1", "auroc", "ece")},
        "validation_at_shipped_operating_point": at_ship,
        "best_epoch": r.epochs,
        "calibration": calib,
        "recipe": _recipe_dict(r),
        **run_facts(m, spec, tr, sv, r.tta_views, weights, seconds, hist["seconds"]),
    }
    write_json(run_dir / "metrics.json", metrics)
    curves = {"InceptionV3": {"loss": hist["loss"], "val_weighted_f1": hist["val_weighted_f1_view0"]}}
    plot_all(run_dir, "inceptionv3", p, yv, th, curves, f"InceptionV3 2.0, held-out fold ({len(set(sv))} subjects)")
    return metrics
